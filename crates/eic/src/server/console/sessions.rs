//! Signed-in console sessions: a random id in an HttpOnly cookie, the
//! session itself in the store's [`ConsoleSessions`] (this node's memory on
//! the embedded store, Redis shared by every node otherwise), keyed by the
//! id's SHA-256: a lookup's timing says nothing about the ids held, and
//! what the store holds cannot be replayed as a cookie. The memory table is
//! bounded: past `max_sessions`, expired sessions are swept, then a
//! sign-in is refused rather than any session evicted.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use eic_store::{unix_millis, ConsoleSessions, SessionDigest, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "eic_console";

/// One signed-in principal, as stored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub principal_arn: String,
    /// Sent back with every state-changing request and terminal.
    pub csrf: String,
    /// By the signing-in node's clock; checked again on every read.
    expires_at_ms: u64,
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
}

pub struct Sessions {
    store: Arc<dyn ConsoleSessions>,
    ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the console holds as many sessions as it may; try again later")]
    Full,
    #[error("no randomness for a session id: {0}")]
    Random(String),
    #[error("the session store cannot be reached now; try again")]
    Store(#[from] StoreError),
}

fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(id: &str) -> SessionDigest {
    Sha256::digest(id.as_bytes()).into()
}

fn now_ms() -> u64 {
    unix_millis(SystemTime::now().max(UNIX_EPOCH))
}

impl Sessions {
    pub fn new(store: Arc<dyn ConsoleSessions>, ttl: Duration) -> Sessions {
        Sessions { store, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `principal_arn`: its id (for the cookie) and the
    /// session.
    pub async fn create(&self, principal_arn: &str) -> Result<(String, Session), SessionError> {
        let id = random_token()?;
        let session = Session {
            principal_arn: principal_arn.to_owned(),
            csrf: random_token()?,
            expires_at_ms: now_ms()
                .saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)),
        };
        let record = serde_json::to_vec(&session)
            .map_err(|e| StoreError::backend("cannot encode a console session", e))?;
        if !self.store.put(&digest(&id), record, self.ttl).await? {
            return Err(SessionError::Full);
        }
        Ok((id, session))
    }

    /// The live session of cookie value `id`.
    pub async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let Some(record) = self.store.get(&digest(id)).await? else {
            return Ok(None);
        };
        // A record that does not decode (written by another version, say)
        // is no session.
        Ok(serde_json::from_slice::<Session>(&record)
            .ok()
            .filter(|s| s.expires_at_ms > now_ms()))
    }

    /// Signs the session out, on every node sharing the store.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        self.store.remove(&digest(id)).await
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
    use eic_store::MemoryConsoleSessions;

    fn sessions(ttl: Duration, max: usize) -> Sessions {
        Sessions::new(Arc::new(MemoryConsoleSessions::new(max)), ttl)
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_id_until_signed_out_or_expired() {
        let table = sessions(Duration::from_secs(60), 10);
        let (id, session) = table.create("arn:aws:iam::1:user/a").await.unwrap();
        let found = table.get(&id).await.unwrap().unwrap();
        assert_eq!(found.principal_arn, session.principal_arn);
        assert!(found.csrf_matches(&session.csrf));
        assert!(table.get("other").await.unwrap().is_none());
        assert!(table.remove(&id).await.unwrap());
        assert!(table.get(&id).await.unwrap().is_none());
        let short = sessions(Duration::ZERO, 10);
        let (id, _) = short.create("arn:aws:iam::1:user/a").await.unwrap();
        assert!(short.get(&id).await.unwrap().is_none(), "expired");
    }

    #[tokio::test]
    async fn a_full_table_refuses_a_sign_in() {
        let table = sessions(Duration::from_secs(60), 2);
        table.create("a").await.unwrap();
        table.create("b").await.unwrap();
        assert!(matches!(table.create("c").await, Err(SessionError::Full)));
    }

    #[tokio::test]
    async fn csrf_tokens_compare_exactly_and_stay_out_of_debug() {
        let table = sessions(Duration::from_secs(60), 2);
        let (_, session) = table.create("a").await.unwrap();
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
