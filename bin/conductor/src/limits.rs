//! Bounds every request meets before a handler runs, whoever sends it: no compressed bodies, a deadline on
//! reading a body, and a cap on the connections one client address holds open.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpResponse, ResponseError, web};
use futures_util::{Stream, StreamExt};

use crate::error::ApiError;
use crate::middleware::BodyLimit;

/// Refuses a body sent with any `Content-Encoding` but `identity` (415) on every route: inflating one before
/// the size limit applies lets a few KiB cost gigabytes, and no client of ours compresses what it sends.
pub async fn refuse_encoded_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let encoded = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .flat_map(|value| value.to_str().unwrap_or("unreadable").split(','))
        .any(|coding| !coding.trim().eq_ignore_ascii_case("identity") && !coding.trim().is_empty());
    if encoded {
        let error = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-content-encoding",
            "request bodies are accepted only uncompressed (no Content-Encoding)",
        );
        // The body is read (never inflated) and dropped, up to the body limit and within its deadline, so the
        // client reads this answer instead of a connection reset; past the limit the connection is closed.
        let limit = req.app_data::<web::Data<BodyLimit>>().map_or(0, |l| l.0);
        let mut payload = req.parts_mut().1.take();
        let mut read: u64 = 0;
        let mut drained = true;
        while let Some(chunk) = payload.next().await {
            read += chunk.map_or(u64::MAX, |bytes| bytes.len() as u64);
            if read > limit {
                drained = false;
                break;
            }
        }
        let response = if drained {
            error.error_response()
        } else {
            closing(&error)
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// How long a request body may take to arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline {
    /// The time every body gets.
    pub base: Duration,
    /// Bytes per second of announced length that earn one more second.
    pub min_rate: u64,
}

impl BodyDeadline {
    /// The deadline of a body announcing `length` bytes (unknown: the base alone).
    pub fn for_length(&self, length: Option<u64>) -> Duration {
        let extra = length.map_or(0, |length| length / self.min_rate.max(1));
        self.base.saturating_add(Duration::from_secs(extra))
    }
}

/// Ends the reading of a body that has not all arrived by its deadline: the handler sees the payload fail,
/// and the answer is a 408 that closes the connection, so a trickling body cannot hold it.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(deadline) = req.app_data::<web::Data<BodyDeadline>>().map(|d| ***d) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let allowed = deadline.for_length(announced);
    let expired = Rc::new(Cell::new(false));
    let payload = req.parts_mut().1.take();
    req.set_payload(Payload::from(within(payload, allowed, expired.clone())));
    let response = next.call(req).await?;
    if !expired.get() {
        return Ok(response.map_into_left_body());
    }
    let error = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body-timeout",
        format!("the request body did not arrive within {} s", allowed.as_secs()),
    );
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, closing(&error)).map_into_right_body())
}

/// `error` as the answer, closing the connection after it: what is left of the request is not worth reading.
fn closing(error: &ApiError) -> HttpResponse {
    let mut response = error.error_response();
    response.head_mut().set_connection_type(ConnectionType::Close);
    response
}

/// `payload`, failing with a timeout once `allowed` has passed since the request arrived.
fn within(
    payload: Payload,
    allowed: Duration,
    expired: Rc<Cell<bool>>,
) -> Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> {
    let deadline = tokio::time::Instant::now() + allowed;
    let stream = futures_util::stream::unfold(Some(payload), move |payload| {
        let expired = expired.clone();
        async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Ok(Some(item)) => Some((item, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    expired.set(true);
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body deadline");
                    Some((Err(PayloadError::Io(error)), None))
                }
            }
        }
    });
    Box::pin(stream)
}

/// Open connections per client address, shared by every worker of the server.
#[derive(Debug, Default)]
pub struct ClientConnections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`ClientConnections`], kept in the connection's data and given back when the
/// connection closes.
#[derive(Debug)]
pub struct ConnectionSlot {
    connections: Arc<ClientConnections>,
    client: IpAddr,
    /// Whether this connection opened when its client already held the most it may.
    pub over_cap: bool,
}

impl ClientConnections {
    /// Counts a new connection from `client`; over the cap when `cap` (non-zero) connections were open already.
    pub fn open(self: &Arc<Self>, client: IpAddr, cap: usize) -> ConnectionSlot {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        *count += 1;
        ConnectionSlot {
            connections: self.clone(),
            client,
            over_cap: cap > 0 && *count > cap,
        }
    }

    /// Connections open from `client` now.
    pub fn count(&self, client: IpAddr) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.get(&client).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// `HttpServer::on_connect`: gives each new TCP connection its slot.
pub fn on_connect(
    connections: Arc<ClientConnections>,
    cap: usize,
) -> impl Fn(&dyn std::any::Any, &mut Extensions) {
    move |connection, data| {
        let peer = connection
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|stream| stream.peer_addr().ok());
        if let Some(peer) = peer {
            data.insert(connections.open(peer.ip(), cap));
        }
    }
}

/// Answers 429 and closes a connection that opened over its client's cap.
pub async fn connection_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if req
        .conn_data::<ConnectionSlot>()
        .is_some_and(|slot| slot.over_cap)
    {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-connections",
            "this address holds too many open connections (server.max_connections_per_client)",
        );
        return Ok(req.into_response(closing(&error)).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_earn_time_by_their_length() {
        let deadline = BodyDeadline {
            base: Duration::from_secs(30),
            min_rate: 64 * 1024,
        };
        assert_eq!(deadline.for_length(None), Duration::from_secs(30));
        assert_eq!(deadline.for_length(Some(1024)), Duration::from_secs(30));
        assert_eq!(deadline.for_length(Some(640 * 1024)), Duration::from_secs(40));
        assert_eq!(
            deadline.for_length(Some(u64::MAX)),
            Duration::from_secs(30 + u64::MAX / (64 * 1024))
        );
    }

    #[test]
    fn slots_count_per_address_and_are_given_back() {
        let connections = Arc::new(ClientConnections::default());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = connections.open(a, 2);
        let second = connections.open(a, 2);
        let third = connections.open(a, 2);
        let other = connections.open(b, 2);
        assert!(!first.over_cap && !second.over_cap && third.over_cap && !other.over_cap);
        drop(third);
        drop(first);
        assert_eq!(connections.count(a), 1);
        assert!(!connections.open(a, 2).over_cap);
        drop(second);
        drop(other);
        assert_eq!(connections.count(a), 0);
        assert!(!connections.open(a, 0).over_cap, "0 is no cap");
    }
}
