//! Routing any host, path and method is total: a route or a typed refusal, never a panic,
//! and a path with dot-segments never reaches a route.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::config::RouteConfig;
use privgate::gateway::router::Router;

fn route(name: &str, host: Option<&str>, prefix: &str, methods: Option<&[&str]>) -> RouteConfig {
    RouteConfig {
        host: host.map(Into::into),
        methods: methods.map(|ms| ms.iter().map(|m| m.to_string()).collect()),
        ..RouteConfig::new(name, prefix, "u")
    }
}

fuzz_target!(|input: (&str, &str, &str)| {
    let (host, path, method) = input;
    let router = Router::new(&[
        route("public", None, "/public", None),
        route("api", Some("*.bank.example"), "/accounts", Some(&["GET"])),
        route("admin", Some("admin.bank.example"), "/", None),
    ])
    .expect("static routes compile");
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    if let Ok(r) = router.route(host, path, &method) {
        assert!(
            !path.split('/').any(|s| s == ".." || s == "."),
            "{path} routed to {}",
            r.name
        );
    }
});
