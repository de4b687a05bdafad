//! WHERE: simple predicates on declared columns, joined by AND, each compared with a
//! literal of the column's type (the literal becomes a bind parameter, never SQL text).

use super::{column, refuse, Literal, Predicate, QueryError};
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};

pub(super) fn predicates(
    expr: &Expr,
    dataset: &DatasetConfig,
    out: &mut Vec<(String, Predicate)>,
) -> Result<(), QueryError> {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            predicates(left, dataset, out)?;
            predicates(right, dataset, out)
        }
        Expr::Nested(inner) => predicates(inner, dataset, out),
        Expr::BinaryOp { op: BinaryOperator::Or, .. } => refuse("OR is not allowed in WHERE (use IN)"),
        Expr::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Eq => "=",
                BinaryOperator::NotEq => "<>",
                BinaryOperator::Lt => "<",
                BinaryOperator::LtEq => "<=",
                BinaryOperator::Gt => ">",
                BinaryOperator::GtEq => ">=",
                _ => return refuse(format!("operator {op} is not allowed in WHERE")),
            };
            let (name, config) = column(left, dataset)?;
            let value = literal(right, name, config)?;
            if !matches!(config, ColumnConfig::Integer { .. }) && !matches!(op, "=" | "<>") {
                return refuse(format!("`{name}` is text: compare it with = or <> only"));
            }
            out.push((name.to_owned(), Predicate::Compare(op, value)));
            Ok(())
        }
        Expr::In { expr, target, negated, .. } => {
            let InTarget::List(list) = target else {
                return refuse("subqueries are not allowed");
            };
            let (name, config) = column(expr, dataset)?;
            if list.is_empty() || list.len() > crate::config::dataset::MAX_CATEGORIES {
                return refuse("IN lists must have 1 to 1000 values");
            }
            let values = list.iter().map(|v| literal(v, name, config)).collect::<Result<_, _>>()?;
            out.push((name.to_owned(), Predicate::In(*negated, values)));
            Ok(())
        }
        Expr::Between { expr, negated, low, high } => {
            let (name, config) = column(expr, dataset)?;
            let (low, high) = (literal(low, name, config)?, literal(high, name, config)?);
            if !matches!(config, ColumnConfig::Integer { .. }) {
                return refuse(format!("`{name}` is text: BETWEEN is for integer columns"));
            }
            out.push((name.to_owned(), Predicate::Between(*negated, low, high)));
            Ok(())
        }
        Expr::Subquery(_) | Expr::Exists { .. } => {
            refuse("subqueries are not allowed")
        }
        _ => refuse("only simple predicates (col op literal, IN, BETWEEN) joined by AND are allowed in WHERE"),
    }
}

/// A literal of the column's type.
fn literal(expr: &Expr, column: &str, config: &ColumnConfig) -> Result<Literal, QueryError> {
    let (negative, inner) = match expr {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        other => (false, other),
    };
    let value = match inner {
        Expr::Value(v) => &v.value,
        _ => return refuse(format!("`{column}` must be compared with a literal")),
    };
    match (config, value) {
        (ColumnConfig::Integer { .. }, Value::Number(n, false)) => {
            let parsed: Option<i64> = n.parse().ok();
            match parsed.and_then(|v| if negative { v.checked_neg() } else { Some(v) }) {
                Some(v) => Ok(Literal::Int(v)),
                None => refuse(format!(
                    "`{column}` is an integer column: compare it with a whole number"
                )),
            }
        }
        (ColumnConfig::Categorical { .. } | ColumnConfig::Key {}, Value::SingleQuotedString(s))
            if !negative =>
        {
            Ok(Literal::Text(s.clone()))
        }
        (ColumnConfig::Integer { .. }, _) => refuse(format!(
            "`{column}` is an integer column: compare it with a whole number"
        )),
        (ColumnConfig::Categorical { .. } | ColumnConfig::Key {}, _) => refuse(format!(
            "`{column}` is text: compare it with a 'quoted' value"
        )),
    }
}
