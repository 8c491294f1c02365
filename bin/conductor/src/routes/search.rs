//! `GET /search/<kind>`: the original's package search (DESIGN §8), answered from the stored answers.

use std::sync::Arc;

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use conductor_search::Hits;

use crate::credentials::OptionalUser;
use crate::error::{ApiError, ErrorAnswer};
use crate::routes::wire::PackageAnswer;
use crate::services::search::SearchState;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(search))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search/{kind}").get(search));
}

/// Visible packages matching the parameters; a valid user token adds the caller's own private ones, and a bad
/// or expired one counts as anonymous. Every parameter value is JSON (`q="budget"`); any other registry field
/// (`package.countryCode`, `package.owner`, `id`...) is an exact or word filter, repeated values OR-ed.
#[utoipa::path(get, path = "/search/{kind}", tag = "search",
    params(("kind" = String, Path, description = "Only `package` exists"),
        ("q" = Option<String>, Query, description = "Free text, as JSON: `\"health budget\"`"),
        ("size" = Option<String>, Query, description = "How many results (default 100, capped by search.max_size)")),
    responses((status = 200, body = Vec<PackageAnswer>),
        (status = 400, description = "An unknown kind, a value that is not JSON, a bad size", body = ErrorAnswer),
        (status = 503, description = "The search index is unavailable", body = ErrorAnswer)),
    security((), ("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn search(
    kind: web::Path<String>,
    caller: OptionalUser,
    state: web::Data<SearchState>,
) -> Result<HttpResponse, ApiError> {
    let viewer = caller.caller().map(|caller| caller.userid().clone());
    let hits: Arc<dyn Hits> = state
        .search
        .search(&kind, caller.params.iter(), viewer)
        .await?
        .into();
    // The first batch is read before answering, so an index that fails answers an error, not a cut-off array.
    let first = read_batch(hits.clone(), 0).await?;
    let mut response = HttpResponse::Ok();
    response.content_type(ContentType::json());
    if hits.len() <= BATCH {
        return Ok(response.body(first));
    }
    Ok(response.streaming(json_array(hits, first)))
}

/// Hits read from the index per chunk of the body: about 64 KiB of answers at a few hundred bytes each.
const BATCH: usize = 128;

/// The answers of hits `start..start + BATCH`, read on the blocking pool, as that piece of the array: `[` before
/// the first, a comma before every other, `]` after the last (in the same write: a lone closing byte after a
/// large write waits out the peer's delayed acknowledgement, 40 ms).
async fn read_batch(hits: Arc<dyn Hits>, start: usize) -> Result<Bytes, ApiError> {
    let end = (start + BATCH).min(hits.len());
    let source = hits.clone();
    let read = web::block(move || source.read(start..end))
        .await
        .map_err(ApiError::internal)??;
    let mut chunk = Vec::with_capacity(read.iter().map(|hit| hit.answer.len() + 1).sum::<usize>() + 1);
    if start == 0 {
        chunk.push(b'[');
    }
    for (offset, hit) in read.iter().enumerate() {
        if start + offset > 0 {
            chunk.push(b',');
        }
        chunk.extend_from_slice(hit.answer.as_bytes());
    }
    if end == hits.len() {
        chunk.push(b']');
    }
    Ok(Bytes::from(chunk))
}

/// What the body sends next.
enum Next {
    Ready(Bytes, usize),
    From(usize),
    Done,
}

/// After the batch that started at `start`: the next batch, if there is one.
fn after(start: usize, hits: &dyn Hits) -> Next {
    if start + BATCH < hits.len() {
        Next::From(start + BATCH)
    } else {
        Next::Done
    }
}

/// `[` + the answers + `]`, a batch at a time, so a listing of the whole catalogue is never held in memory. A
/// batch that fails to read ends the body early (the client sees a cut-off answer, the log says why).
fn json_array(
    hits: Arc<dyn Hits>,
    first: Bytes,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    futures_util::stream::unfold(Next::Ready(first, 0), move |next| {
        let hits = hits.clone();
        async move {
            match next {
                Next::Ready(bytes, start) => Some((Ok(bytes), after(start, hits.as_ref()))),
                Next::From(start) => match read_batch(hits.clone(), start).await {
                    Ok(bytes) => Some((Ok(bytes), after(start, hits.as_ref()))),
                    Err(error) => {
                        tracing::warn!(%error, "a search answer could not be read to its end");
                        Some((Err(error.into()), Next::Done))
                    }
                },
                Next::Done => None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use conductor_core::{PackageId, UserId};
    use conductor_search::{Hit, ReadyHits};
    use futures_util::StreamExt;

    use super::*;

    async fn body(count: usize) -> serde_json::Value {
        let owner = UserId::from_email("ada@example.test");
        let hits: Arc<dyn Hits> = Arc::new(ReadyHits(
            (0..count)
                .map(|n| Hit {
                    id: PackageId::parse(&format!("{owner}:p{n}")).unwrap(),
                    answer: format!("{{\"n\":{n}}}"),
                })
                .collect(),
        ));
        let first = read_batch(hits.clone(), 0).await.unwrap();
        if count <= BATCH {
            return serde_json::from_slice(&first).unwrap();
        }
        let chunks: Vec<Bytes> = json_array(hits, first).map(|c| c.unwrap()).collect().await;
        serde_json::from_slice(&chunks.concat()).unwrap()
    }

    #[actix_web::test]
    async fn answers_stream_as_one_json_array() {
        for count in [0, 1, BATCH - 1, BATCH, BATCH + 1, 5 * BATCH + 7] {
            let body = body(count).await;
            let items = body.as_array().unwrap();
            assert_eq!(items.len(), count);
            assert!(
                items.iter().enumerate().all(|(n, item)| item["n"] == n),
                "{count}: in order"
            );
        }
    }
}
