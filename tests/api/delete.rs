//! `/package/delete` cut short between its two writes, by a fault planted in the real database: it never leaves a
//! registry record whose model names tables that are gone, and trying again finishes it.

use conductor_tests::packages::{execute_sql, permission_token, query_number, tables, userid_of};
use conductor_tests::{Backend, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use crate::package::{load, record};

/// A loaded package: its id, its owner's permission token and session, and its fact table.
struct Loaded {
    id: String,
    token: String,
    user: String,
    fact: String,
}

async fn load_example(app: &TestApp) -> Loaded {
    let token = permission_token(app, "deleter@example.org").await;
    let user = app.log_in("deleter@example.org").await;
    let (_, _, last) = load(app, &token, "os-packager-example").await;
    assert_eq!(last["status"], "done", "{last}");
    let id = format!("{}:example", userid_of(&token));
    let fact = record(app, &user, &id).await.expect("its record")["model"]["fact_table"]
        .as_str()
        .expect("a fact table")
        .to_owned();
    assert_eq!(
        tables(&app.database_url, &fact).len(),
        2,
        "a fact and a dimension table"
    );
    Loaded {
        id,
        token,
        user,
        fact,
    }
}

async fn delete(app: &TestApp, package: &Loaded) -> (StatusCode, serde_json::Value) {
    app.post_form(
        &format!("/package/delete?jwt={}&id={}", package.token, package.id),
        &[],
    )
    .await
}

/// The registry refuses to delete the record: the package stays whole, its rows still readable.
async fn a_refused_record_delete_keeps_the_tables(backend: Backend) {
    let app = spawn_app(backend).await;
    let package = load_example(&app).await;
    let refuse = match backend {
        Backend::Postgres => {
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_delete BEFORE DELETE ON packages \
             FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON packages \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
    };
    execute_sql(&app.database_url, refuse).expect("the trigger");

    let (status, body) = delete(&app, &package).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        record(&app, &package.user, &package.id).await.is_some(),
        "the record stays"
    );
    assert_eq!(
        query_number(
            &app.database_url,
            &format!("SELECT count(*) FROM \"{}\"", package.fact)
        ),
        Ok(9),
        "and the rows its model names"
    );

    let lift = match backend {
        Backend::Postgres => "DROP TRIGGER refuse_delete ON packages",
        Backend::Sqlite => "DROP TRIGGER refuse_delete",
    };
    execute_sql(&app.database_url, lift).expect("the trigger goes");
    let (status, body) = delete(&app, &package).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    assert!(record(&app, &package.user, &package.id).await.is_none());
    assert!(
        tables(&app.database_url, &package.fact).is_empty(),
        "its tables are dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_delete_keeps_the_tables_on_sqlite() {
    a_refused_record_delete_keeps_the_tables(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_delete_keeps_the_tables_on_postgres() {
    a_refused_record_delete_keeps_the_tables(Backend::Postgres).await;
}

/// The tables cannot be dropped after the record went (PostgreSQL's event trigger refuses every `DROP TABLE`):
/// the package is gone for every reader, and a second delete drops what the first left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_cut_short_after_the_record_is_finished_by_a_retry() {
    let app = spawn_app(Backend::Postgres).await;
    let package = load_example(&app).await;
    execute_sql(
        &app.database_url,
        "CREATE FUNCTION refuse_drop() RETURNS event_trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE EVENT TRIGGER refuse_drop ON ddl_command_start WHEN TAG IN ('DROP TABLE') \
         EXECUTE FUNCTION refuse_drop()",
    )
    .expect("the event trigger");

    let (status, body) = delete(&app, &package).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        record(&app, &package.user, &package.id).await.is_none(),
        "no record is left to name the tables"
    );
    assert_eq!(
        tables(&app.database_url, &package.fact).len(),
        2,
        "the drop was refused"
    );

    execute_sql(&app.database_url, "DROP EVENT TRIGGER refuse_drop").expect("the event trigger goes");
    let (status, body) = delete(&app, &package).await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::NOT_FOUND, json!(false)),
        "no record existed"
    );
    assert!(
        tables(&app.database_url, &package.fact).is_empty(),
        "the retry dropped the tables the first delete left"
    );
}
