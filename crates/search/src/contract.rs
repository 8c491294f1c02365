//! One contract suite for [`SearchIndex`], run against every adapter.

use conductor_core::{PackageId, PackageRecord, Timestamp, UserId};
use serde_json::{Value, json};

use crate::{RecordList, RecordPages, SearchError, SearchIndex, SearchQuery};

pub fn ada() -> UserId {
    UserId::from_email("ada@example.test")
}

pub fn bob() -> UserId {
    UserId::from_email("bob@example.test")
}

fn record(owner: &UserId, dataset: &str, package: Value, loaded: bool, updated: i64) -> PackageRecord {
    let mut package = package;
    package["owner"] = json!(owner);
    package["name"] = json!(dataset);
    PackageRecord {
        id: PackageId::parse(&format!("{owner}:{dataset}")).unwrap(),
        model: json!({"fact_table": "t", "measures": {"amount": {"column": "amount"}}}),
        package,
        origin_url: format!("http://127.0.0.1:8000/datastore/files/{owner}/{dataset}/datapackage.json"),
        dataset: None,
        author: None,
        loading_status: None,
        loaded,
        last_update: Timestamp::from_millis(updated),
    }
}

/// The packages every check runs on: Ada's in each state of the visibility matrix, and Bob's public ones.
pub fn fixtures() -> Vec<PackageRecord> {
    vec![
        record(
            &ada(),
            "public-loaded",
            json!({"title": "Moldova budget 2014", "private": false, "countryCode": "MD",
            "count_of_rows": 10, "author": "Ada <ada@not.shown>"}),
            true,
            1_000,
        ),
        record(
            &ada(),
            "public-unloaded",
            json!({"title": "Unloaded budget", "private": false}),
            false,
            2_000,
        ),
        record(
            &ada(),
            "private-loaded",
            json!({"title": "Private spending", "private": true, "countryCode": "UK"}),
            true,
            3_000,
        ),
        record(
            &ada(),
            "private-unloaded",
            json!({"title": "Private draft", "private": true}),
            false,
            4_000,
        ),
        record(
            &bob(),
            "uk-finances",
            json!({"title": "UK central government finances", "countryCode": ["GB", "UK"],
            "regionCode": "eu", "count_of_rows": 250, "description": "Spending by department",
            "meta": {"level": "national", "checked": true}}),
            true,
            5_000,
        ),
        record(
            &bob(),
            "city-contracts",
            json!({"title": "Contracts", "cityCode": "ldn", "count_of_rows": 10,
            "description": "A budget for the city of London"}),
            true,
            6_000,
        ),
    ]
}

fn query(params: &[(&str, &str)], viewer: Option<UserId>) -> SearchQuery {
    SearchQuery::parse("package", params.iter().copied(), viewer, 10_000).unwrap()
}

async fn ids(index: &dyn SearchIndex, params: &[(&str, &str)], viewer: Option<UserId>) -> Vec<String> {
    index
        .search(&query(params, viewer))
        .await
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .map(|hit| hit.id.dataset().to_string())
        .collect()
}

async fn sorted(index: &dyn SearchIndex, params: &[(&str, &str)], viewer: Option<UserId>) -> Vec<String> {
    let mut found = ids(index, params, viewer).await;
    found.sort();
    found
}

/// Every id the index lists, sorted.
pub async fn listed_ids(index: &dyn SearchIndex) -> Vec<String> {
    let mut listed: Vec<String> = index
        .ids()
        .await
        .unwrap()
        .iter()
        .map(|id| id.to_string())
        .collect();
    listed.sort();
    listed
}

pub async fn suite(index: &dyn SearchIndex) {
    // In pages of two: three pages make one index.
    index
        .rebuild(&mut RecordList::in_pages_of(fixtures(), 2))
        .await
        .unwrap();
    assert_eq!(index.count().await.unwrap(), 6);

    // Visibility: {owner, other, anonymous} × {private, public} × {loaded, not loaded}.
    let public = ["city-contracts", "public-loaded", "uk-finances"];
    assert_eq!(sorted(index, &[], None).await, public);
    assert_eq!(
        sorted(index, &[], Some(bob())).await,
        public,
        "Bob sees Ada's public loaded package only"
    );
    assert_eq!(
        sorted(index, &[], Some(ada())).await,
        [
            "city-contracts",
            "private-loaded",
            "private-unloaded",
            "public-loaded",
            "public-unloaded",
            "uk-finances"
        ],
        "Ada sees all of hers in every state"
    );
    // Every hit carries the answer stored for it, the object the clients read.
    let hits = index
        .search(&query(&[], Some(ada())))
        .await
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(hits.len(), 6);
    for hit in &hits {
        let fixture = fixtures().into_iter().find(|r| r.id == hit.id).unwrap();
        let answer: Value = serde_json::from_str(&hit.answer).unwrap();
        let expected: Value = serde_json::from_str(&crate::search_answer(&fixture)).unwrap();
        assert_eq!(answer, expected, "{}", hit.id);
    }
    let mut renamed = fixtures()[0].clone();
    renamed.package["title"] = json!("Renamed");
    index.upsert(&renamed).await.unwrap();
    let hits = index
        .search(&query(&[("id", &format!("\"{}\"", renamed.id))], None))
        .await
        .unwrap()
        .read_all()
        .unwrap();
    let answer: Value = serde_json::from_str(&hits[0].answer).unwrap();
    assert_eq!(
        answer["package"]["title"], "Renamed",
        "an upsert stores the new answer"
    );
    index.upsert(&fixtures()[0]).await.unwrap();

    // Newest first without free text.
    assert_eq!(
        ids(index, &[], None).await,
        ["city-contracts", "uk-finances", "public-loaded"]
    );

    // Exact filters: owner, id, codes (arrays match any element), repeated values OR-ed.
    let owner = format!("\"{}\"", ada());
    assert_eq!(
        sorted(index, &[("package.owner", &owner)], Some(ada()))
            .await
            .len(),
        4
    );
    assert_eq!(
        sorted(index, &[("package.owner", &owner)], None).await,
        ["public-loaded"]
    );
    let id = format!("\"{}:uk-finances\"", bob());
    assert_eq!(sorted(index, &[("id", &id)], None).await, ["uk-finances"]);
    assert_eq!(
        sorted(index, &[("package.countryCode", "\"UK\"")], None).await,
        ["uk-finances"]
    );
    assert_eq!(
        sorted(index, &[("package.countryCode", "\"UK\"")], Some(ada())).await,
        ["private-loaded", "uk-finances"]
    );
    assert_eq!(
        sorted(
            index,
            &[
                ("package.countryCode", "\"MD\""),
                ("package.countryCode", "\"GB\"")
            ],
            None
        )
        .await,
        ["public-loaded", "uk-finances"]
    );
    assert!(
        sorted(index, &[("package.countryCode", "\"U\"")], None)
            .await
            .is_empty(),
        "codes match whole"
    );

    // Numbers, booleans and nested fields.
    assert_eq!(
        sorted(index, &[("package.count_of_rows", "10")], None).await,
        ["city-contracts", "public-loaded"]
    );
    assert_eq!(
        sorted(index, &[("package.meta.level", "\"national\"")], None).await,
        ["uk-finances"]
    );
    assert_eq!(
        sorted(index, &[("package.meta.checked", "true")], None).await,
        ["uk-finances"]
    );
    assert_eq!(
        sorted(index, &[("loaded", "false")], Some(ada())).await,
        ["private-unloaded", "public-unloaded"]
    );
    // Filters are AND-ed.
    assert_eq!(
        sorted(
            index,
            &[("package.count_of_rows", "10"), ("package.cityCode", "\"ldn\"")],
            None
        )
        .await,
        ["city-contracts"]
    );

    // Word match on text fields.
    assert_eq!(
        sorted(index, &[("package.title", "\"budget\"")], None).await,
        ["public-loaded"]
    );
    assert_eq!(
        sorted(index, &[("package.title", "\"Government\"")], None).await,
        ["uk-finances"]
    );

    // q: a title match ranks above a description-only match.
    assert_eq!(
        ids(index, &[("q", "\"budget\"")], None).await,
        ["public-loaded", "city-contracts"]
    );
    assert_eq!(
        ids(index, &[("q", "\"spending\"")], Some(ada())).await,
        ["private-loaded", "uk-finances"]
    );
    assert_eq!(
        ids(index, &[("q", "\"md\"")], None).await,
        ["public-loaded"],
        "codes are searched too"
    );
    assert!(
        ids(index, &[("q", "\"nothing matches this\"")], None)
            .await
            .is_empty()
    );
    // Query syntax is not interpreted: an operator or a wildcard read as syntax would change what matches.
    assert!(
        index
            .search(&query(&[("q", "\"a:b (c\\\" OR\"")], None))
            .await
            .is_ok(),
        "unbalanced syntax is no error"
    );
    assert!(
        ids(index, &[("q", "\"*\"")], None).await.is_empty(),
        "a wildcard is not everything"
    );
    assert_eq!(
        ids(index, &[("q", "\"NOT Moldova\"")], None).await,
        ["public-loaded"],
        "NOT is a word, so Moldova's package matches (as syntax it would be excluded)"
    );

    // size.
    assert_eq!(ids(index, &[("size", "2")], None).await.len(), 2);

    // Upsert replaces, delete removes.
    let mut changed = fixtures().remove(0);
    changed.package["private"] = json!(true);
    index.upsert(&changed).await.unwrap();
    assert_eq!(sorted(index, &[], None).await, ["city-contracts", "uk-finances"]);
    assert_eq!(index.count().await.unwrap(), 6);
    let deleted_at = Timestamp::from_millis(changed.last_update.as_millis() + 1);
    index.delete(&changed.id, deleted_at).await.unwrap();
    assert_eq!(index.count().await.unwrap(), 5);
    // Every package, private and unloaded ones too, listed by id.
    let listed = listed_ids(index).await;
    let mut expected: Vec<String> = fixtures()[1..].iter().map(|r| r.id.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        !sorted(index, &[], Some(ada()))
            .await
            .contains(&"public-loaded".to_owned())
    );

    // Rebuild replaces everything.
    index
        .rebuild(&mut RecordList::new(fixtures()[4..].to_vec()))
        .await
        .unwrap();
    assert_eq!(index.count().await.unwrap(), 2);
    assert_eq!(
        sorted(index, &[], Some(ada())).await,
        ["city-contracts", "uk-finances"]
    );

    // A rebuild whose registry read fails after a page leaves the index as it was, and the next write commits
    // nothing of it.
    let failed = index
        .rebuild(&mut FailingAfterOnePage(Some(fixtures()[..2].to_vec())))
        .await;
    assert!(matches!(failed, Err(SearchError::Unavailable(_))), "{failed:?}");
    assert_eq!(index.count().await.unwrap(), 2);
    index.upsert(&fixtures()[4]).await.unwrap();
    assert_eq!(listed_ids(index).await.len(), 2);
    assert_eq!(
        sorted(index, &[], Some(ada())).await,
        ["city-contracts", "uk-finances"]
    );
}

/// A registry that yields one page, then cannot be read.
struct FailingAfterOnePage(Option<Vec<PackageRecord>>);

#[async_trait::async_trait]
impl RecordPages for FailingAfterOnePage {
    async fn next_page(&mut self) -> crate::Result<Vec<PackageRecord>> {
        self.0
            .take()
            .ok_or_else(|| SearchError::Unavailable("the registry went away".into()))
    }
}
