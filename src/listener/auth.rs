//! Basic authentication against `basic_auth_users`: bcrypt verification, a bounded cache
//! of verified credentials, and comparisons that take the same time whether or not they
//! match.
//!
//! A bcrypt check at cost 10 takes tens of milliseconds of CPU, so a scraper presenting
//! the same credentials every 15 s must not pay it each time: a successful check is
//! remembered as an HMAC (keyed with a random per-process key) of the user, the stored
//! hash and the password, never the password itself. Lookups compare against every
//! cached tag in constant time. Failures are not cached, so guessing costs a bcrypt per
//! guess; bcrypt runs on the blocking pool one check at a time, so a flood of bad
//! passwords cannot starve the runtime, and cached scrapes never wait behind it.
//! An unknown user is checked against a dummy hash of the same cost, so timing does not
//! tell which users exist.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use ring::hmac;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

/// Verified credentials remembered; a handful of scrapers and people need far fewer.
const CACHE_SIZE: usize = 64;

/// The users of one web configuration and the credentials verified for them.
pub struct BasicAuth {
    /// Name and bcrypt hash.
    users: Vec<(String, String)>,
    key: hmac::Key,
    cache: Mutex<VecDeque<hmac::Tag>>,
    /// One bcrypt at a time.
    bcrypt: Semaphore,
    /// A hash of the users' cost, for unknown user names.
    dummy: OnceLock<String>,
}

/// Names only: the hashes and the cache stay out of any debug output.
impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("BasicAuth").field("users", &names).finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// `users` must hold valid bcrypt hashes (the web configuration checked them).
    pub fn new(users: Vec<(String, String)>) -> Self {
        let rng = ring::rand::SystemRandom::new();
        // Falls back to a fixed key only if the system has no randomness, which would
        // have stopped TLS long before; the cache stays correct, only less opaque.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"wsprobe"));
        Self {
            users,
            key,
            cache: Mutex::new(VecDeque::new()),
            bcrypt: Semaphore::new(1),
            dummy: OnceLock::new(),
        }
    }

    /// Whether the `Authorization` header value holds the credentials of a configured user.
    pub async fn allows(self: &Arc<Self>, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        // Every name is compared, so the position of a match does not show in the timing.
        let mut found: Option<usize> = None;
        for (i, (name, _)) in self.users.iter().enumerate() {
            if bool::from(name.as_bytes().ct_eq(&user)) {
                found = Some(i);
            }
        }
        let tag = found.map(|i| self.tag(&user, &self.users[i].1, &password));
        if let Some(tag) = &tag {
            if self.cached(tag) {
                return true;
            }
        }
        let Ok(_permit) = self.bcrypt.acquire().await else {
            return false;
        };
        let me = self.clone();
        let verified = tokio::task::spawn_blocking(move || {
            let hash = match found {
                Some(i) => me.users[i].1.clone(),
                None => me.dummy().to_owned(),
            };
            // Longer passwords are refused rather than cut at bcrypt's 72 bytes.
            bcrypt::non_truncating_verify(&password, &hash).unwrap_or(false) && found.is_some()
        })
        .await
        .unwrap_or(false);
        if verified {
            if let Some(tag) = tag {
                self.remember(tag);
            }
        }
        verified
    }

    fn tag(&self, user: &[u8], hash: &str, password: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [user, hash.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.sign()
    }

    fn cached(&self, tag: &hmac::Tag) -> bool {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hit = subtle::Choice::from(0);
        for known in cache.iter() {
            hit |= known.as_ref().ct_eq(tag.as_ref());
        }
        bool::from(hit)
    }

    fn remember(&self, tag: hmac::Tag) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_SIZE {
            cache.pop_front();
        }
        cache.push_back(tag);
    }

    fn dummy(&self) -> &str {
        self.dummy.get_or_init(|| {
            let cost = self
                .users
                .first()
                .and_then(|(_, h)| h.parse::<bcrypt::HashParts>().ok())
                .map_or(10, |p| p.get_cost());
            bcrypt::hash_with_salt(b"wsprobe: no such user", cost, [7; 16])
                .map(|p| p.to_string())
                .unwrap_or_default()
        })
    }
}

/// User and password of a `Basic` authorization value (the scheme name in any case).
fn parse_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
            .into_bytes()
    }

    fn auth() -> Arc<BasicAuth> {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        Arc::new(BasicAuth::new(vec![("alice".into(), hash)]))
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() {
        let auth = auth();
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
        assert!(!auth.allows(Some(&header("bob", "s3cret"))).await);
        assert!(!auth.allows(Some(b"Bearer abc")).await);
        assert!(!auth.allows(Some(b"Basic !!!")).await);
        assert!(!auth.allows(None).await);
    }

    #[tokio::test]
    async fn a_verified_password_is_cached_and_a_wrong_one_is_not() {
        let auth = auth();
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 1);
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 1, "a hit adds nothing");
        assert!(!auth.allows(Some(&header("alice", "s3cret2"))).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 1, "failures are not cached");
    }

    #[test]
    fn the_cache_is_bounded() {
        let auth = auth();
        for i in 0..(CACHE_SIZE + 10) {
            auth.remember(auth.tag(b"alice", "h", i.to_string().as_bytes()));
        }
        assert_eq!(auth.cache.lock().unwrap().len(), CACHE_SIZE);
        assert!(!auth.cached(&auth.tag(b"alice", "h", b"0")), "the oldest went first");
        assert!(auth.cached(&auth.tag(b"alice", "h", (CACHE_SIZE + 9).to_string().as_bytes())));
    }

    #[test]
    fn debug_output_shows_no_hash() {
        let shown = format!("{:?}", auth());
        assert!(shown.contains("alice") && !shown.contains("$2"), "{shown}");
    }

    #[test]
    fn the_scheme_name_is_case_insensitive_and_the_password_may_hold_colons() {
        let value = format!("bAsIc {}", base64::engine::general_purpose::STANDARD.encode("u:p:q"));
        assert_eq!(parse_basic(value.as_bytes()), Some((b"u".to_vec(), b"p:q".to_vec())));
    }
}
