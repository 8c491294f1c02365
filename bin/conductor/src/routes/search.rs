//! `GET /search/<kind>`: the original's package search (DESIGN §8), answered from the stored answers.

use actix_web::body::SizedStream;
use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};

use crate::credentials::OptionalUser;
use crate::error::ApiError;
use crate::services::search::SearchState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search/{kind}").get(search));
}

/// Visible packages matching the parameters; a valid user token adds the caller's own private ones, and a bad
/// or expired one counts as anonymous.
async fn search(
    kind: web::Path<String>,
    caller: OptionalUser,
    state: web::Data<SearchState>,
) -> Result<HttpResponse, ApiError> {
    let viewer = caller.user().map(|claims| claims.userid.clone());
    let answers = state.search.search(&kind, caller.params.iter(), viewer).await?;
    let length = json_array_length(&answers);
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(SizedStream::new(length, json_array(answers))))
}

/// The bytes of `[a,b,...]`.
fn json_array_length(answers: &[String]) -> u64 {
    let items: usize = answers.iter().map(String::len).sum();
    (items + answers.len().saturating_sub(1) + 2) as u64
}

/// How much of the array one chunk of the body carries.
const CHUNK: usize = 64 * 1024;

/// The answers as one JSON array, in chunks of about [`CHUNK`] bytes, each answer dropped once it is sent: a
/// large listing is never copied whole.
fn json_array(
    answers: Vec<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let mut answers = answers.into_iter().peekable();
    let mut started = false;
    let mut ended = false;
    futures_util::stream::iter(std::iter::from_fn(move || {
        if ended {
            return None;
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        if !started {
            chunk.push(b'[');
            started = true;
        }
        while chunk.len() < CHUNK {
            match answers.next() {
                Some(answer) => {
                    chunk.extend_from_slice(answer.as_bytes());
                    if answers.peek().is_some() {
                        chunk.push(b',');
                    }
                }
                None => {
                    chunk.push(b']');
                    ended = true;
                    break;
                }
            }
        }
        Some(Ok(Bytes::from(chunk)))
    }))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn body(answers: Vec<String>) -> String {
        let length = json_array_length(&answers);
        let chunks: Vec<Bytes> = json_array(answers).map(|c| c.unwrap()).collect().await;
        let body: Vec<u8> = chunks.concat();
        assert_eq!(
            body.len() as u64,
            length,
            "the announced length is the sent length"
        );
        String::from_utf8(body).unwrap()
    }

    #[actix_web::test]
    async fn answers_stream_as_one_json_array() {
        assert_eq!(body(Vec::new()).await, "[]");
        assert_eq!(body(vec!["{\"a\":1}".into()]).await, "[{\"a\":1}]");
        let many: Vec<String> = (0..5000).map(|i| format!("{{\"id\":\"{i:0>40}\"}}")).collect();
        let parsed: serde_json::Value = serde_json::from_str(&body(many.clone()).await).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 5000);
        assert_eq!(parsed[4999]["id"], format!("{:0>40}", 4999));
    }
}
