//! Signed-in console sessions: a random id in an HttpOnly cookie, the
//! session itself in this node's memory. The table is keyed by the id's
//! SHA-256, so a lookup's timing says nothing about the ids held, and
//! bounded: past `max`, expired sessions are swept, then a sign-in is
//! refused rather than any session evicted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "eic_console";

/// One signed-in principal.
#[derive(Clone)]
pub struct Session {
    pub principal_arn: String,
    /// Sent back with every state-changing request and terminal.
    pub csrf: String,
    pub signed_in_at: SystemTime,
    expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal_arn", &self.principal_arn)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.as_bytes().ct_eq(token.as_bytes()).into()
    }

    pub fn remaining(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }
}

pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
    max: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the console holds as many sessions as it may; try again later")]
    Full,
    #[error("no randomness for a session id: {0}")]
    Random(String),
}

fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `principal_arn`: its id (for the cookie) and the
    /// session.
    pub fn create(&self, principal_arn: &str) -> Result<(String, Session), SessionError> {
        let id = random_token()?;
        let session = Session {
            principal_arn: principal_arn.to_owned(),
            csrf: random_token()?,
            signed_in_at: SystemTime::now(),
            expires: Instant::now() + self.ttl,
        };
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= self.max {
            let now = Instant::now();
            table.retain(|_, s| s.expires > now);
            if table.len() >= self.max {
                return Err(SessionError::Full);
            }
        }
        table.insert(digest(&id), session.clone());
        Ok((id, session))
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                table.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Signs the session out; true if there was one.
    pub fn remove(&self, id: &str) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&digest(id)).is_some()
    }

    #[cfg(test)]
    fn expire_all(&self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for session in table.values_mut() {
            session.expires = Instant::now();
        }
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a session: HttpOnly, SameSite=Strict, Secure over TLS.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        ttl.as_secs()
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_signed_out_or_expired() {
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let (id, session) = sessions.create("arn:aws:iam::1:user/a").unwrap();
        assert_eq!(
            sessions.get(&id).unwrap().principal_arn,
            session.principal_arn
        );
        assert!(sessions.get("other").is_none());
        assert!(sessions.remove(&id));
        assert!(sessions.get(&id).is_none());
        let (id, _) = sessions.create("arn:aws:iam::1:user/a").unwrap();
        sessions.expire_all();
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_sweeps_expired_sessions_first() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        sessions.create("a").unwrap();
        sessions.create("b").unwrap();
        assert!(matches!(sessions.create("c"), Err(SessionError::Full)));
        sessions.expire_all();
        assert!(sessions.create("c").is_ok());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let (_, session) = sessions.create("a").unwrap();
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&format!("{}x", session.csrf)));
        assert!(!format!("{session:?}").contains(&session.csrf));
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_strictly() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=1; eic_console=abc; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("abc"));
        let set = set_cookie("abc", Duration::from_secs(3600), true);
        assert_eq!(
            set,
            "eic_console=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!clear_cookie(false).contains("Secure"));
    }
}
