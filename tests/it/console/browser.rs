//! Chromium through chromedriver: started per test on a free port, headless, and stopped
//! when dropped.

use fantoccini::{Client, ClientBuilder};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver; `None` (the test skips) when chromium is not installed, unless
    /// `PRIVGATE_REQUIRE_BROWSER` is set, which makes that a failure.
    pub fn start() -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("PRIVGATE_REQUIRE_BROWSER").is_none(),
                "PRIVGATE_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!("console browser test skipped: no {CHROMIUM} or {CHROMEDRIVER}");
            return None;
        }
        let port = crate::harness::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Self { child, port })
    }

    /// A new headless browser session. The demo's certificate is its own CA's: the
    /// browser is told to accept it (the console's TLS is not what this test is about).
    pub async fn session(&self) -> Client {
        let capabilities = serde_json::json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--disable-gpu"],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        // chromedriver takes a moment to listen.
        for _ in 0..50 {
            match ClientBuilder::native()
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        panic!("chromedriver on port {} did not start a session", self.port);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
