//! Every function in schema `bosun`, the runtime's own included, refuses a NULL where it has
//! no meaning: SQLSTATE 22004, a message naming the argument, nothing changed. The functions
//! are found in the catalog, so a function added later is covered without a line here.

use bosun_tests::{saga_sql::start, snapshot, TestDb};
use sqlx::PgConnection;

/// Functions that judge or format a value and write nothing: a NULL gets an answer like any
/// other value (NULL, false, `'NULL'`).
const PURE: &[&str] = &[
    "bad_tags",
    "is_timestamptz",
    "job_input_error",
    "job_row_problem",
    "job_saga",
    "quote_short",
    "require_arguments",
    "saga_job_keys",
    "target_gone_reason",
    "valid_kind",
    "valid_queue",
    "valid_saga_kind",
];

/// Arguments where NULL means "none" or "the default".
const NULLABLE: &[(&str, &str)] = &[
    ("enqueue", "unique_key"),
    ("enqueue", "target"),
    ("enqueue_unique", "unique_key"),
    ("enqueue_unique", "target"),
    ("enqueue_arrays", "arg_objects"),
    ("enqueue_arrays", "queues"),
    ("enqueue_arrays", "priorities"),
    ("enqueue_arrays", "scheduled_ats"),
    ("enqueue_arrays", "max_attempts_list"),
    ("enqueue_arrays", "unique_keys"),
    ("enqueue_arrays", "targets"),
    ("enqueue_arrays", "tag_lists"),
    ("enqueue_arrays", "metas"),
    ("expunge_target", "reason"),
    ("register_target", "kind"),
    ("retry_jobs", "queue"),
    ("retry_jobs", "kind"),
    ("start_saga", "target"),
    ("schedule_periodic", "target"),
    ("periodic_fire", "next_at"),
    ("periodic_note", "next_at"),
    ("periodic_note", "error"),
    ("saga_job_finish", "error"),
    ("saga_step_progress", "message"),
    ("saga_step_begin", "step_max_attempts"),
    ("saga_undo_begin", "step_max_attempts"),
    ("saga_job_hold_taking_limit", "step_max_attempts"),
    ("claim", "kinds"),
    ("fail_job", "retry_in"),
    ("fail_job", "error_kind"),
];

/// A value of `sql_type` that is not NULL, for the arguments not under test.
fn some_value(sql_type: &str) -> String {
    match sql_type {
        "text" => "'x'".into(),
        "bigint" | "integer" | "smallint" | "real" | "double precision" => "1".into(),
        "boolean" => "true".into(),
        "uuid" => "'00000000-0000-0000-0000-000000000001'".into(),
        "jsonb" => "'{}'".into(),
        "timestamp with time zone" => "now()".into(),
        "interval" => "interval '1 second'".into(),
        "bosun.job_state" | "job_state" => "'failed'".into(),
        "bosun.jobs" | "jobs" => "(SELECT j FROM bosun.jobs AS j LIMIT 1)".into(),
        "bosun.sagas" | "sagas" => "(SELECT s FROM bosun.sagas AS s LIMIT 1)".into(),
        array if array.ends_with("[]") => format!("'{{}}'::{array}"),
        other => panic!("no sample value for type {other}: add one"),
    }
}

/// `(function, [(argument, type)])` for every function of schema `bosun` but triggers.
async fn functions(conn: &mut PgConnection) -> Vec<(String, Vec<(String, String)>)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname, pg_get_function_identity_arguments(p.oid)
         FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname = 'bosun' AND p.prorettype <> 'trigger'::regtype
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(name, args)| {
            let args = args
                .split(", ")
                .filter(|a| !a.is_empty())
                .map(|a| {
                    let (name, ty) = a.split_once(' ').expect("argument name and type");
                    (name.to_string(), ty.to_string())
                })
                .collect();
            (name, args)
        })
        .collect()
}

#[tokio::test]
async fn every_function_refuses_a_null_where_it_has_no_meaning() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sqlx::query("SELECT bosun.enqueue('k')")
        .execute(&mut conn)
        .await
        .unwrap();
    start(&mut conn, "checks").await;
    let before = snapshot(&mut conn).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (function, args) in functions(&mut conn).await {
        if PURE.contains(&function.as_str()) {
            continue;
        }
        for (tested, _) in &args {
            if NULLABLE.contains(&(function.as_str(), tested.as_str())) {
                continue;
            }
            let values: Vec<String> = args
                .iter()
                .map(|(name, ty)| {
                    let value = if name == tested {
                        format!("NULL::{ty}")
                    } else {
                        some_value(ty)
                    };
                    format!("{name} => {value}")
                })
                .collect();
            let sql = format!("SELECT bosun.{function}({})", values.join(", "));
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            let result = sqlx::query(&sql).execute(&mut conn).await;
            sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            checked += 1;
            let named = |message: &str| {
                let last = tested.rsplit('_').next().unwrap_or(tested);
                message.contains(&format!("{tested} must not be null"))
                    || message.contains(&format!("{last} must not be null"))
            };
            match result {
                Err(error) => match error.as_database_error() {
                    Some(db) if db.code().as_deref() == Some("22004") && named(db.message()) => {}
                    Some(db) => {
                        failures.push(format!("{sql}: SQLSTATE {:?}: {}", db.code(), db.message()))
                    }
                    None => failures.push(format!("{sql}: {error}")),
                },
                Ok(_) => failures.push(format!("{sql}: accepted")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls did not refuse their NULL:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 100, "only {checked} calls were made");
    assert_eq!(snapshot(&mut conn).await, before, "nothing changed");
}
