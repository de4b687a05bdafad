//! The restricted SQL analysts write, parsed with `sqlparser` into a [`Query`] whose every
//! part has a sensitivity the dataset's declared bounds fix:
//!
//! ```text
//! SELECT [cat, ...,] COUNT(*) | SUM(col) | AVG(col) | MEDIAN(col) | QUANTILE(col, q), ...
//! FROM dataset
//! [WHERE pred AND pred ...]      pred: col = | <> | < | <= | > | >= literal, col [NOT] IN (...),
//!                                      col [NOT] BETWEEN a AND b   (declared columns only)
//! [GROUP BY cat, ...]            declared categorical columns; every category is released
//! [GROUP BY key]                 one key column, one COUNT(*) (and SUM/AVG): keys above a
//!                                DP threshold
//! ```
//!
//! GROUP BY needs the dataset's GROUP BY bounds (`contribution`); GROUP BY a key column also
//! needs its delta budgets (`threshold`).
//!
//! Anything else is refused with a [`QueryError`] that names what is not allowed and what
//! is. The parser never interpolates a literal into SQL: values travel as bind parameters.

use super::contribution;
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectNamePart, SelectItem,
    SetExpr, Statement, TableFactor, Value,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use std::sync::LazyLock;

/// What the query language allows, quoted in every refusal.
pub const ALLOWED: &str = "allowed: SELECT [category columns,] COUNT(*), SUM(col), AVG(col), \
MEDIAN(col) or QUANTILE(col, q) FROM dataset [WHERE simple predicates on declared columns \
joined by AND] [GROUP BY declared categorical columns, or one key column with one COUNT(*)]";

/// Longest SQL text accepted (a query in this subset is short; this bounds parser work).
pub const MAX_SQL_BYTES: usize = 4096;

/// Most aggregates in one query (each gets a share of the query's epsilon).
pub const MAX_AGGREGATES: usize = 8;

/// A refused query; the message says what was refused and what is allowed. It names
/// columns and SQL forms, never the literal values the analyst wrote.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}; {ALLOWED}")]
pub struct QueryError {
    /// What is not allowed.
    pub what: String,
}

fn refuse<T>(what: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError { what: what.into() })
}

/// An aggregate the gateway can release.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `COUNT(*)`: rows (after truncation).
    Count,
    /// `SUM(col)` of an integer column, clamped to its bounds.
    Sum(String),
    /// `AVG(col)`: a noisy sum over a noisy count.
    Avg(String),
    /// `QUANTILE(col, q)` (`MEDIAN(col)` is q = 0.5), chosen among candidates in bounds.
    Quantile(String, f64),
}

impl Aggregate {
    /// The aggregate as the analyst would read it, e.g. `SUM(amount)`.
    pub fn label(&self) -> String {
        match self {
            Self::Count => "COUNT(*)".into(),
            Self::Sum(c) => format!("SUM({c})"),
            Self::Avg(c) => format!("AVG({c})"),
            Self::Quantile(c, q) => format!("QUANTILE({c}, {q})"),
        }
    }
}

/// One output column, in SELECT order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A GROUP BY column.
    Group(String),
    /// A noisy aggregate.
    Aggregate(Aggregate),
}

/// A literal in a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// For integer columns.
    Int(i64),
    /// For categorical columns.
    Text(String),
}

/// A WHERE predicate on one declared column.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `col <op> literal`; `op` is one of `=`, `<>`, `<`, `<=`, `>`, `>=`.
    Compare(&'static str, Literal),
    /// `col [NOT] IN (literals)`.
    In(bool, Vec<Literal>),
    /// `col [NOT] BETWEEN low AND high`.
    Between(bool, Literal, Literal),
}

/// A parsed, checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Output columns in SELECT order.
    pub outputs: Vec<Output>,
    /// GROUP BY columns (categorical), in GROUP BY order.
    pub group_by: Vec<String>,
    /// GROUP BY is on one key column: the keys come from the data and are released only
    /// above a DP threshold.
    pub keyed: bool,
    /// WHERE predicates, all of which must hold.
    pub filters: Vec<(String, Predicate)>,
}

impl Query {
    /// The aggregates, in SELECT order.
    pub fn aggregates(&self) -> impl Iterator<Item = &Aggregate> {
        self.outputs.iter().filter_map(|o| match o {
            Output::Aggregate(a) => Some(a),
            Output::Group(_) => None,
        })
    }

    /// A canonical text for the cache key: the same question however it was spelled.
    pub fn normalized(&self) -> String {
        format!("{:?}|{:?}|{:?}", self.outputs, self.group_by, self.filters)
    }
}

/// Parses `sql` as a query on `dataset`, refusing everything outside the subset.
pub fn parse(sql: &str, dataset: &DatasetConfig) -> Result<Query, QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return refuse(format!("SQL longer than {MAX_SQL_BYTES} bytes"));
    }
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).or_else(|_| refuse("the SQL does not parse"))?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return refuse("exactly one SELECT statement is allowed");
    };
    if query.with.is_some() {
        return refuse("WITH is not allowed");
    }
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return refuse("ORDER BY, LIMIT and FETCH are not allowed");
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return refuse("UNION, INTERSECT, EXCEPT, VALUES and nested queries are not allowed");
    };
    // Everything else a query can carry must be absent: compare with a bare query.
    let (bare_query, mut bare_select) = bare()?;
    let mut rest = (**query).clone();
    rest.body = bare_query.body.clone();
    if rest != bare_query {
        return refuse("this query form is not allowed");
    }
    if select.distinct.is_some() {
        return refuse("DISTINCT is not allowed");
    }
    if select.having.is_some() {
        return refuse("HAVING is not allowed");
    }
    check_from(select, dataset, &bare_select)?;
    let mut rest = (**select).clone();
    for s in [&mut rest, &mut bare_select] {
        s.projection.clear();
        s.from.clear();
        s.selection = None;
        s.group_by = GroupByExpr::Expressions(vec![], vec![]);
    }
    if rest != bare_select {
        return refuse("this SELECT form is not allowed");
    }
    let (group_by, keyed) = group_by(&select.group_by, dataset)?;
    let outputs = outputs(&select.projection, &group_by, dataset)?;
    let counts = outputs
        .iter()
        .filter(|o| matches!(o, Output::Aggregate(Aggregate::Count)))
        .count();
    if keyed && counts != 1 {
        return refuse(format!(
            "GROUP BY the key column `{}` needs exactly one COUNT(*): its noisy count decides which keys are released (SUM and AVG may come with it)",
            group_by[0]
        ));
    }
    let mut filters = Vec::new();
    if let Some(selection) = &select.selection {
        predicates(selection, dataset, &mut filters)?;
    }
    Ok(Query {
        outputs,
        group_by,
        keyed,
        filters,
    })
}

/// The bare query `SELECT 1 FROM t` and its SELECT, parsed once (None: the parser failed).
static BARE: LazyLock<Option<(sqlparser::ast::Query, sqlparser::ast::Select)>> =
    LazyLock::new(|| {
        let parsed = Parser::parse_sql(&GenericDialect {}, "SELECT 1 FROM t").ok()?;
        match parsed.into_iter().next() {
            Some(Statement::Query(q)) => match q.body.as_ref() {
                SetExpr::Select(select) => {
                    let select = (**select).clone();
                    Some((*q, select))
                }
                _ => None,
            },
            _ => None,
        }
    });

/// The bare query `SELECT 1 FROM t`, whose parts stand for "absent" in comparisons.
fn bare() -> Result<(sqlparser::ast::Query, sqlparser::ast::Select), QueryError> {
    match &*BARE {
        Some(bare) => Ok(bare.clone()),
        None => refuse("the SQL parser failed"),
    }
}

fn check_from(
    select: &sqlparser::ast::Select,
    dataset: &DatasetConfig,
    bare_select: &sqlparser::ast::Select,
) -> Result<(), QueryError> {
    let [from] = select.from.as_slice() else {
        return refuse("FROM must name exactly one dataset (no joins, no comma lists)");
    };
    if !from.joins.is_empty() {
        return refuse("JOIN is not allowed");
    }
    let TableFactor::Table {
        name,
        alias: None,
        args: None,
        ..
    } = &from.relation
    else {
        return refuse("FROM must name the dataset itself (no subqueries, functions or aliases)");
    };
    let Some(mut bare_from) = bare_select.from.first().map(|f| f.relation.clone()) else {
        return refuse("the SQL parser failed");
    };
    if let TableFactor::Table {
        name: bare_name, ..
    } = &mut bare_from
    {
        bare_name.clone_from(name);
    }
    if from.relation != bare_from {
        return refuse("FROM must name the dataset itself, without hints or options");
    }
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] if id.value.eq_ignore_ascii_case(&dataset.name) => Ok(()),
        _ => refuse(format!("FROM must be the dataset `{}`", dataset.name)),
    }
}

/// A plain column name declared in the dataset.
fn column<'d>(
    expr: &Expr,
    dataset: &'d DatasetConfig,
) -> Result<(&'d str, &'d ColumnConfig), QueryError> {
    let Expr::Identifier(id) = expr else {
        return refuse("only plain declared column names are allowed, not expressions");
    };
    match dataset
        .columns
        .get_key_value(id.value.to_ascii_lowercase().as_str())
    {
        Some((name, config)) => Ok((name.as_str(), config)),
        None => refuse(format!(
            "column `{}` is not declared for this dataset",
            id.value
        )),
    }
}

/// The GROUP BY columns, and whether they are one key column.
fn group_by(
    group_by: &GroupByExpr,
    dataset: &DatasetConfig,
) -> Result<(Vec<String>, bool), QueryError> {
    let GroupByExpr::Expressions(exprs, modifiers) = group_by else {
        return refuse("GROUP BY ALL is not allowed");
    };
    if !modifiers.is_empty() {
        return refuse("GROUP BY modifiers (ROLLUP, CUBE, ...) are not allowed");
    }
    let mut columns = Vec::new();
    let mut keyed = false;
    for expr in exprs {
        let (name, config) = column(expr, dataset)?;
        match config {
            ColumnConfig::Categorical { .. } => {}
            ColumnConfig::Key {} => keyed = true,
            ColumnConfig::Integer { .. } => {
                return refuse(format!("GROUP BY `{name}`: only categorical columns (with a declared category list) and key columns can be grouped on"));
            }
        }
        if let Some(missing) = contribution::missing_bounds(dataset, name) {
            return refuse(missing);
        }
        if columns.iter().any(|c| c == name) {
            return refuse(format!("GROUP BY `{name}` twice"));
        }
        columns.push(name.to_owned());
    }
    if keyed && columns.len() > 1 {
        return refuse("a key column is grouped on alone (GROUP BY key), not with other columns");
    }
    if keyed && contribution::delta_budgets(dataset).is_none() {
        return refuse(format!(
            "GROUP BY the key column `{}` releases keys found in the data, only above a DP threshold, which needs delta > 0: declare analyst_delta and global_delta for dataset `{}`",
            columns[0], dataset.name
        ));
    }
    Ok((columns, keyed))
}

fn outputs(
    projection: &[SelectItem],
    group_by: &[String],
    dataset: &DatasetConfig,
) -> Result<Vec<Output>, QueryError> {
    let mut outputs = Vec::new();
    for item in projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) => e,
            SelectItem::ExprWithAlias { .. } => {
                return refuse("column aliases (AS) are not allowed")
            }
            _ => return refuse("SELECT * is not allowed: name aggregates"),
        };
        let output = match expr {
            Expr::Identifier(_) => {
                let (name, _) = column(expr, dataset)?;
                if !group_by.iter().any(|g| g == name) {
                    return refuse(format!("`{name}` is selected but not in GROUP BY"));
                }
                Output::Group(name.to_owned())
            }
            Expr::Function(f) => Output::Aggregate(aggregate(f, dataset, !group_by.is_empty())?),
            _ => return refuse("only GROUP BY columns and aggregates can be selected"),
        };
        outputs.push(output);
    }
    let aggregates = outputs
        .iter()
        .filter(|o| matches!(o, Output::Aggregate(_)))
        .count();
    if aggregates == 0 {
        return refuse("at least one aggregate is required (row-level data is never released)");
    }
    if aggregates > MAX_AGGREGATES {
        return refuse(format!("at most {MAX_AGGREGATES} aggregates per query"));
    }
    Ok(outputs)
}

fn aggregate(
    f: &sqlparser::ast::Function,
    dataset: &DatasetConfig,
    grouped: bool,
) -> Result<Aggregate, QueryError> {
    let name = match f.name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => id.value.to_ascii_lowercase(),
        _ => return refuse("qualified function names are not allowed"),
    };
    if f.over.is_some()
        || f.filter.is_some()
        || !f.within_group.is_empty()
        || f.null_treatment.is_some()
        || !matches!(f.parameters, FunctionArguments::None)
        || f.uses_odbc_syntax
    {
        return refuse(format!(
            "{name}: window, FILTER and WITHIN GROUP clauses are not allowed"
        ));
    }
    let FunctionArguments::List(list) = &f.args else {
        return refuse(format!("{name}: arguments must be in parentheses"));
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return refuse(format!(
            "{name}: DISTINCT and clauses inside aggregates are not allowed"
        ));
    }
    let args: Vec<&FunctionArgExpr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(e) => Ok(e),
            _ => refuse("named function arguments are not allowed"),
        })
        .collect::<Result<_, _>>()?;
    let integer_column = |arg: &FunctionArgExpr| -> Result<String, QueryError> {
        let FunctionArgExpr::Expr(e) = arg else {
            return refuse(format!("{name} takes a column, not *"));
        };
        let (column_name, config) = column(e, dataset)?;
        match config {
            ColumnConfig::Integer { .. } => Ok(column_name.to_owned()),
            ColumnConfig::Categorical { .. } | ColumnConfig::Key {} => refuse(format!(
                "{name}(`{column_name}`): only integer columns have bounds to aggregate"
            )),
        }
    };
    let aggregate = match (name.as_str(), args.as_slice()) {
        ("count", [FunctionArgExpr::Wildcard]) => Aggregate::Count,
        ("count", _) => return refuse("only COUNT(*) is allowed"),
        ("sum", [a]) => Aggregate::Sum(integer_column(a)?),
        ("avg", [a]) => Aggregate::Avg(integer_column(a)?),
        ("median", [a]) => Aggregate::Quantile(integer_column(a)?, 0.5),
        ("quantile", [a, FunctionArgExpr::Expr(q)]) => {
            Aggregate::Quantile(integer_column(a)?, fraction(q)?)
        }
        ("sum" | "avg" | "median" | "quantile", _) => {
            return refuse(format!("{name}: wrong arguments"))
        }
        _ => return refuse(format!("function `{name}` is not allowed")),
    };
    if grouped && matches!(aggregate, Aggregate::Quantile(..)) {
        return refuse("quantiles are released without GROUP BY only");
    }
    Ok(aggregate)
}

fn fraction(expr: &Expr) -> Result<f64, QueryError> {
    if let Expr::Value(v) = expr {
        if let Value::Number(n, false) = &v.value {
            if let Ok(q) = n.parse::<f64>() {
                if q > 0.0 && q < 1.0 {
                    return Ok(q);
                }
            }
        }
    }
    refuse("QUANTILE's second argument must be a number strictly between 0 and 1")
}

mod filter;
#[cfg(test)]
mod tests;

use filter::predicates;
