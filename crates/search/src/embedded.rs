//! The embedded index (the default tier): tantivy on disk under `data_dir`.
//!
//! Each package is one document: its id, owner and public flag for visibility, `last_update` for ordering,
//! boosted text fields for `q`, and the indexed document twice as JSON: once with the raw tokenizer (exact
//! matches on ids, owners and codes; numbers and booleans) and once with the default one (word matches on text
//! fields, as ES's analysed `match` did). The document store keeps the id and the package's search answer,
//! which a search returns as stored. All work runs on the blocking pool.

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use conductor_core::{PackageId, PackageRecord, Timestamp};
use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::columnar::NumericalValue;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, BoostQuery, EmptyQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, OwnedValue, STORED, STRING, Schema, TEXT,
    TextFieldIndexing, Value as _,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::query::TEXT_FIELDS;
use crate::{
    Filter, Hit, Hits, ReadyHits, RecordPages, Result, SearchError, SearchIndex, SearchQuery,
    indexed_document, is_public, owner_of, search_answer,
};

/// Decompressed document-store blocks kept per segment (16 KiB each, so at most 16 MiB a segment): a listing of
/// the whole catalogue reads its answers from memory instead of decompressing a block per result.
const DOCSTORE_CACHE_BLOCKS: usize = 1_024;

/// The writer's memory budget: tantivy needs at least 15 MB a thread; one thread is plenty here.
const WRITER_BUDGET: usize = 32_000_000;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    answer: Field,
    owner: Field,
    public: Field,
    last_update: Field,
    title: Field,
    author: Field,
    owner_text: Field,
    description: Field,
    codes: Field,
    doc_raw: Field,
    doc_text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let json = |tokenizer: &str, record: IndexRecordOption| {
        JsonObjectOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(record),
        )
    };
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        // Stored only: what a search answers for the package, as the clients read it.
        answer: builder.add_text_field("answer", STORED),
        owner: builder.add_text_field("owner", STRING),
        public: builder.add_bool_field("public", INDEXED),
        last_update: builder.add_i64_field("last_update", INDEXED | FAST),
        title: builder.add_text_field("title", TEXT),
        author: builder.add_text_field("author", TEXT),
        owner_text: builder.add_text_field("owner_text", TEXT),
        description: builder.add_text_field("description", TEXT),
        codes: builder.add_text_field("codes", TEXT),
        doc_raw: builder.add_json_field("doc_raw", json("raw", IndexRecordOption::Basic)),
        doc_text: builder.add_json_field(
            "doc_text",
            json("default", IndexRecordOption::WithFreqsAndPositions),
        ),
    };
    (builder.build(), fields)
}

struct Inner {
    index: Index,
    reader: IndexReader,
    /// tantivy allows one writer per directory (a lock file): taken at the first write, so a process that only
    /// reads (a command beside a serving gateway) never contends for it.
    writer: Mutex<Option<IndexWriter>>,
    /// Shared by writes, held alone by a rebuild: a write's commit in the middle of a rebuild would publish the
    /// index half rebuilt.
    rebuilding: tokio::sync::RwLock<()>,
    fields: Fields,
}

/// The on-disk index.
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIndex").finish_non_exhaustive()
    }
}

fn index_error(error: impl std::fmt::Display) -> SearchError {
    SearchError::Index(error.to_string())
}

impl EmbeddedIndex {
    /// Opens the index in `dir`, creating it if needed. An index of another layout (an older build) is
    /// replaced by an empty one: the registry is the source of truth and the caller rebuilds from it.
    pub fn open(dir: &Path) -> Result<Self> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir).map_err(index_error)?;
        let open = |schema: Schema| {
            let directory = MmapDirectory::open(dir).map_err(index_error)?;
            Index::open_or_create(directory, schema).map_err(index_error)
        };
        let index = match open(schema.clone()) {
            Ok(index) => index,
            // Most likely an index of an older layout: start empty; the registry rebuilds it.
            Err(_) => {
                std::fs::remove_dir_all(dir).map_err(index_error)?;
                std::fs::create_dir_all(dir).map_err(index_error)?;
                open(schema)?
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOCSTORE_CACHE_BLOCKS)
            .try_into()
            .map_err(index_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(None),
                rebuilding: tokio::sync::RwLock::new(()),
                fields,
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(index_error)?
    }
}

impl Inner {
    fn document(&self, record: &PackageRecord) -> TantivyDocument {
        let f = &self.fields;
        let package = &record.package;
        let text = |key: &str| {
            package
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut document = TantivyDocument::default();
        let owner = owner_of(record);
        document.add_text(f.id, record.id.to_string());
        document.add_text(f.answer, search_answer(record));
        document.add_text(f.owner, &owner);
        document.add_bool(f.public, is_public(record));
        document.add_i64(f.last_update, record.last_update.as_millis());
        let title = package
            .get("title")
            .and_then(Value::as_str)
            .map_or_else(|| text("name"), str::to_owned);
        document.add_text(f.title, title);
        document.add_text(f.author, text("author"));
        document.add_text(f.owner_text, owner);
        document.add_text(f.description, text("description"));
        for key in ["regionCode", "countryCode", "cityCode"] {
            match package.get(key) {
                Some(Value::String(code)) => document.add_text(f.codes, code),
                Some(Value::Array(codes)) => {
                    for code in codes.iter().filter_map(Value::as_str) {
                        document.add_text(f.codes, code);
                    }
                }
                _ => {}
            }
        }
        let json = owned(&indexed_document(record));
        document.add_field_value(f.doc_raw, &json);
        document.add_field_value(f.doc_text, &json);
        document
    }

    /// Runs `work` with the index's writer, taking the writer lock of the directory the first time.
    fn writing<T>(&self, work: impl FnOnce(&mut IndexWriter) -> Result<T>) -> Result<T> {
        let mut slot = self.writer.lock().map_err(index_error)?;
        let writer = match slot.as_mut() {
            Some(writer) => writer,
            None => slot.insert(
                self.index
                    .writer_with_num_threads(1, WRITER_BUDGET)
                    .map_err(index_error)?,
            ),
        };
        work(writer)
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit().map_err(index_error)?;
        // Manual reload: a search right after a write sees it.
        self.reader.reload().map_err(index_error)
    }

    fn query(&self, query: &SearchQuery) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let public: Box<dyn Query> = Box::new(TermQuery::new(
            Term::from_field_bool(f.public, true),
            IndexRecordOption::Basic,
        ));
        let visible: Box<dyn Query> = match &query.viewer {
            Some(viewer) => Box::new(BooleanQuery::union(vec![public, term(f.owner, viewer.as_str())])),
            None => public,
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, visible)];
        for filter in &query.filters {
            let alternatives = filter
                .values
                .iter()
                .map(|value| self.value_query(filter, value))
                .collect::<Result<Vec<_>>>()?;
            clauses.push((Occur::Must, Box::new(BooleanQuery::union(alternatives))));
        }
        if let Some(text) = &query.text {
            clauses.push((Occur::Must, self.free_text(text)?));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// One filter value: exact on ids, owners, codes, numbers and booleans; by words on other strings.
    fn value_query(&self, filter: &Filter, value: &Value) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let path = filter.field.as_str();
        let mut term = Term::from_field_json_path(f.doc_raw, path, false);
        match value {
            Value::String(text) if filter.is_exact() => term.append_type_and_str(text),
            Value::String(text) => return self.words(path, text),
            Value::Bool(flag) => term.append_type_and_fast_value(*flag),
            Value::Number(number) => {
                let number = match (number.as_i64(), number.as_u64(), number.as_f64()) {
                    (Some(i), _, _) => NumericalValue::I64(i),
                    (None, Some(u), _) => NumericalValue::U64(u),
                    (None, None, Some(x)) => NumericalValue::F64(x),
                    _ => return Ok(Box::new(EmptyQuery)),
                };
                match number.normalize() {
                    NumericalValue::I64(i) => term.append_type_and_fast_value(i),
                    NumericalValue::U64(u) => term.append_type_and_fast_value(u),
                    NumericalValue::F64(x) => term.append_type_and_fast_value(x),
                }
            }
            // Null, arrays and objects never matched a `match` query on one value.
            _ => return Ok(Box::new(EmptyQuery)),
        }
        Ok(Box::new(TermQuery::new(term, IndexRecordOption::Basic)))
    }

    /// Any word of `text` at `path`, as ES's analysed `match` (operator OR) did.
    fn words(&self, path: &str, text: &str) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let mut analyzer = self.index.tokenizer_for_field(f.doc_text).map_err(index_error)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        analyzer.token_stream(text).process(&mut |token| {
            let mut term = Term::from_field_json_path(f.doc_text, path, false);
            term.append_type_and_str(&token.text);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
            ));
        });
        if clauses.is_empty() {
            Ok(Box::new(EmptyQuery))
        } else {
            Ok(Box::new(BooleanQuery::new(clauses)))
        }
    }

    /// `q` over the text fields with their boosts, built from words so no query syntax is interpreted.
    fn free_text(&self, text: &str) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let field = |name: &str| match name {
            "package.title" => f.title,
            "package.author" => f.author,
            "package.owner" => f.owner_text,
            "package.description" => f.description,
            _ => f.codes,
        };
        let mut analyzer = self.index.tokenizer_for_field(f.title).map_err(index_error)?;
        let mut words: Vec<String> = Vec::new();
        analyzer.token_stream(text).process(&mut |token| {
            if !words.contains(&token.text) {
                words.push(token.text.clone());
            }
        });
        if words.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let mut fields: Vec<(Field, f32)> = TEXT_FIELDS
            .iter()
            .map(|(name, boost)| (field(name), *boost))
            .collect();
        fields.dedup_by_key(|(field, _)| *field);
        let per_word = words
            .iter()
            .map(|word| {
                let per_field = fields
                    .iter()
                    .map(|(field, boost)| {
                        let term: Box<dyn Query> = Box::new(TermQuery::new(
                            Term::from_field_text(*field, word),
                            IndexRecordOption::WithFreqs,
                        ));
                        (
                            Occur::Should,
                            Box::new(BoostQuery::new(term, *boost)) as Box<dyn Query>,
                        )
                    })
                    .collect();
                (
                    Occur::Should,
                    Box::new(BooleanQuery::new(per_field)) as Box<dyn Query>,
                )
            })
            .collect();
        Ok(Box::new(BooleanQuery::new(per_word)))
    }

    fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>> {
        if query.size == 0 {
            return Ok(Box::new(ReadyHits::default()));
        }
        let searcher = self.reader.searcher();
        let tantivy_query = self.query(query)?;
        let addresses: Vec<DocAddress> = if query.text.is_some() {
            searcher
                .search(&tantivy_query, &TopDocs::with_limit(query.size).order_by_score())
                .map_err(index_error)?
                .into_iter()
                .map(|(_, address)| address)
                .collect()
        } else {
            searcher
                .search(
                    &tantivy_query,
                    &TopDocs::with_limit(query.size).order_by_fast_field::<i64>("last_update", Order::Desc),
                )
                .map_err(index_error)?
                .into_iter()
                .map(|(_, address)| address)
                .collect()
        };
        Ok(Box::new(StoredHits {
            searcher,
            addresses,
            fields: self.fields,
        }))
    }
}

/// Hits still in the document store, read through the searcher that found them (it keeps their segments).
struct StoredHits {
    searcher: Searcher,
    addresses: Vec<DocAddress>,
    fields: Fields,
}

impl Hits for StoredHits {
    fn len(&self) -> usize {
        self.addresses.len()
    }

    fn read(&self, range: Range<usize>) -> Result<Vec<Hit>> {
        let end = range.end.min(self.addresses.len());
        let addresses = self.addresses.get(range.start.min(end)..end).unwrap_or_default();
        addresses
            .iter()
            .map(|address| {
                let document: TantivyDocument = self.searcher.doc(*address).map_err(index_error)?;
                let text = |field| {
                    document
                        .get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                };
                Ok(Hit {
                    id: PackageId::parse(text(self.fields.id)).map_err(index_error)?,
                    answer: text(self.fields.answer).to_owned(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl SearchIndex for EmbeddedIndex {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(&self, record: &PackageRecord) -> Result<()> {
        let _writing = self.inner.rebuilding.read().await;
        let record = record.clone();
        self.blocking(move |inner| {
            let document = inner.document(&record);
            inner.writing(|writer| {
                writer.delete_term(Term::from_field_text(inner.fields.id, &record.id.to_string()));
                writer.add_document(document).map_err(index_error)?;
                inner.commit(writer)
            })
        })
        .await
    }

    // One process writes this index; there is no slower replica's stale write to refuse.
    async fn delete(&self, id: &PackageId, _at: Timestamp) -> Result<()> {
        let _writing = self.inner.rebuilding.read().await;
        let id = id.to_string();
        self.blocking(move |inner| {
            inner.writing(|writer| {
                writer.delete_term(Term::from_field_text(inner.fields.id, &id));
                inner.commit(writer)
            })
        })
        .await
    }

    async fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>> {
        let query = query.clone();
        self.blocking(move |inner| inner.search(&query)).await
    }

    /// Every page is added to the writer uncommitted, and one commit at the end swaps the whole index: a search
    /// meanwhile sees the old one.
    async fn rebuild(&self, pages: &mut dyn RecordPages) -> Result<()> {
        let _alone = self.inner.rebuilding.write().await;
        let filled = async {
            self.blocking(|inner| {
                inner.writing(|writer| writer.delete_all_documents().map(drop).map_err(index_error))
            })
            .await?;
            loop {
                let page = pages.next_page().await?;
                if page.is_empty() {
                    break;
                }
                self.blocking(move |inner| {
                    inner.writing(|writer| {
                        for record in &page {
                            writer.add_document(inner.document(record)).map_err(index_error)?;
                        }
                        Ok(())
                    })
                })
                .await?;
            }
            self.blocking(|inner| inner.writing(|writer| inner.commit(writer)))
                .await
        }
        .await;
        if filled.is_err() {
            // Nothing of a failed rebuild stays for the next write's commit to publish.
            let rolled_back = self
                .blocking(|inner| inner.writing(|writer| writer.rollback().map(drop).map_err(index_error)))
                .await;
            if let Err(error) = rolled_back {
                tracing::error!(%error, "could not roll back a failed rebuild of the search index");
            }
        }
        filled
    }

    async fn count(&self) -> Result<u64> {
        self.blocking(|inner| Ok(inner.reader.searcher().num_docs()))
            .await
    }

    async fn ids(&self) -> Result<Vec<PackageId>> {
        self.blocking(|inner| {
            let searcher = inner.reader.searcher();
            let addresses = searcher
                .search(&tantivy::query::AllQuery, &tantivy::collector::DocSetCollector)
                .map_err(index_error)?;
            addresses
                .into_iter()
                .map(|address| {
                    let document: TantivyDocument = searcher.doc(address).map_err(index_error)?;
                    let id = document.get_first(inner.fields.id).and_then(|v| v.as_str());
                    PackageId::parse(id.unwrap_or_default()).map_err(index_error)
                })
                .collect()
        })
        .await
    }
}

/// serde_json to tantivy without its conversion of date-like strings into dates (a code like "2014-01-01"
/// must stay a string to match as one).
fn owned(value: &Value) -> OwnedValue {
    match value {
        Value::Null => OwnedValue::Null,
        Value::Bool(flag) => OwnedValue::Bool(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(i), _) => OwnedValue::I64(i),
            (None, Some(u)) => OwnedValue::U64(u),
            _ => OwnedValue::F64(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => OwnedValue::Str(text.clone()),
        Value::Array(items) => OwnedValue::Array(items.iter().map(owned).collect()),
        Value::Object(map) => OwnedValue::Object(map.iter().map(|(k, v)| (k.clone(), owned(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_index_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(dir.path()).unwrap();
        crate::contract::suite(&index).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_opener_reads_beside_the_writer_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = EmbeddedIndex::open(dir.path()).unwrap();
        gateway
            .rebuild(&mut crate::RecordList::new(crate::contract::fixtures()))
            .await
            .unwrap();
        // A command opening the same index while the gateway holds the writer: it opens and reads...
        let command = EmbeddedIndex::open(dir.path()).expect("opening takes no lock");
        assert_eq!(command.count().await.unwrap(), 6);
        // ...and its writes fail (the registry queues them in the outbox for the gateway) instead of corrupting.
        let refused = command.upsert(&crate::contract::fixtures()[0]).await;
        assert!(matches!(refused, Err(SearchError::Index(_))), "{refused:?}");
        assert_eq!(gateway.count().await.unwrap(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_index_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = EmbeddedIndex::open(dir.path()).unwrap();
            index
                .rebuild(&mut crate::RecordList::new(crate::contract::fixtures()))
                .await
                .unwrap();
        }
        let reopened = EmbeddedIndex::open(dir.path()).unwrap();
        assert_eq!(reopened.count().await.unwrap(), 6);
    }
}
