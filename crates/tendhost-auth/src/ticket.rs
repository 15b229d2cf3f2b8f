//! WebSocket tickets. Browsers cannot set headers on a WebSocket, and a long-lived token must
//! never sit in a URL (logs, history, Referer). So a token holder asks for a ticket
//! (`POST /ws/ticket`): random, single use, valid for [`TICKET_TTL`], kept here only as its
//! hash. Redeeming removes it whether or not it is still valid. At most `capacity` live
//! tickets exist; expired ones are swept on every issue.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::token::{Caller, TokenError, TokenHash};

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Prefix of a ticket (distinct from tokens, which a ticket can never stand in for).
const TICKET_PREFIX: &str = "tht_";

#[derive(Debug)]
pub struct TicketBook {
    capacity: usize,
    live: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl Default for TicketBook {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl TicketBook {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// A new ticket for `caller`, valid until `now + TICKET_TTL`. When the book is full the
    /// ticket closest to expiry is dropped.
    pub fn issue(&self, caller: Caller, now: Instant) -> Result<String, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| TokenError::Random(err.to_string()))?;
        let ticket = format!("{TICKET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|_, (_, expires)| *expires > now);
        if live.len() >= self.capacity
            && let Some(key) = live
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(key, _)| *key)
        {
            live.remove(&key);
        }
        live.insert(
            *TokenHash::of(&ticket).as_bytes(),
            (caller, now + TICKET_TTL),
        );
        Ok(ticket)
    }

    /// The caller a ticket was issued to, once: the ticket is gone afterwards.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<Caller> {
        if !ticket.starts_with(TICKET_PREFIX) || ticket.len() > 128 {
            return None;
        }
        let key = *TokenHash::of(ticket).as_bytes();
        let (caller, expires) = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)?;
        (expires > now).then_some(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn caller() -> Caller {
        Caller {
            name: "dash".to_owned(),
            role: Role::Read,
        }
    }

    #[test]
    fn a_ticket_works_once() {
        let book = TicketBook::default();
        let now = Instant::now();
        let ticket = book.issue(caller(), now).unwrap();
        assert!(ticket.starts_with(TICKET_PREFIX));
        assert_eq!(book.redeem(&ticket, now), Some(caller()));
        assert_eq!(book.redeem(&ticket, now), None);
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let book = TicketBook::default();
        let now = Instant::now();
        let ticket = book.issue(caller(), now).unwrap();
        assert_eq!(book.redeem(&ticket, now + TICKET_TTL), None);
    }

    #[test]
    fn a_token_or_garbage_is_not_a_ticket() {
        let book = TicketBook::default();
        let now = Instant::now();
        book.issue(caller(), now).unwrap();
        assert_eq!(book.redeem("th_abc", now), None);
        assert_eq!(book.redeem(&"tht_".repeat(100), now), None);
        assert_eq!(book.redeem("", now), None);
    }

    #[test]
    fn the_book_is_bounded() {
        let book = TicketBook::new(2);
        let now = Instant::now();
        let first = book.issue(caller(), now).unwrap();
        let second = book.issue(caller(), now + Duration::from_secs(1)).unwrap();
        let third = book.issue(caller(), now + Duration::from_secs(2)).unwrap();
        let later = now + Duration::from_secs(3);
        assert_eq!(book.redeem(&first, later), None, "oldest dropped");
        assert!(book.redeem(&second, later).is_some());
        assert!(book.redeem(&third, later).is_some());
    }
}
