//! ARM's request throttling (Learn, "Understand how Azure Resource Manager throttles requests",
//! section "Regional throttling and token bucket algorithm"): a token bucket per subscription,
//! principal and operation type, and a global bucket per subscription and operation type 15
//! times as large, shared by every principal. A request takes one token from both; when either
//! is empty it is refused with 429 `SubscriptionRequestsThrottled` and `Retry-After`.
//!
//! Time is passed in (`now_ms`), so the refill is a pure function of the clock and unit tests
//! drive it without sleeping.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::errors::ArmError;

/// ARM's operation types: GET/HEAD read, DELETE deletes, every other method writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Read,
    Write,
    Delete,
}

impl Class {
    pub fn of(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => Self::Read,
            "DELETE" => Self::Delete,
            _ => Self::Write,
        }
    }

    /// The word in ARM's message ("Number of 'read' requests …").
    fn word(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }

    /// The header suffix (`x-ms-ratelimit-remaining-subscription-reads`).
    fn plural(self) -> &'static str {
        match self {
            Self::Read => "reads",
            Self::Write => "writes",
            Self::Delete => "deletes",
        }
    }
}

/// One bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

/// The limits in force: ARM's published values unless the world or the admin API says
/// otherwise (tests shrink them to drive a bucket dry quickly).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "reads")]
    pub reads: Rate,
    #[serde(default = "writes")]
    pub writes: Rate,
    #[serde(default = "deletes")]
    pub deletes: Rate,
    /// The global per-subscription bucket is this many times the per-principal one.
    #[serde(default = "global_factor")]
    pub global_factor: f64,
}

fn reads() -> Rate {
    Rate {
        burst: 250.0,
        per_second: 25.0,
    }
}
fn writes() -> Rate {
    Rate {
        burst: 200.0,
        per_second: 10.0,
    }
}
fn deletes() -> Rate {
    writes()
}
fn global_factor() -> f64 {
    15.0
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            reads: reads(),
            writes: writes(),
            deletes: deletes(),
            global_factor: global_factor(),
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        let rates = [self.reads, self.writes, self.deletes];
        if rates
            .iter()
            .any(|r| !(r.burst >= 1.0 && r.per_second > 0.0 && r.per_second.is_finite()))
        {
            return Err("every bucket needs burst >= 1 and a positive perSecond".into());
        }
        if !(self.global_factor >= 1.0 && self.global_factor.is_finite()) {
            return Err("globalFactor must be at least 1".into());
        }
        Ok(())
    }

    fn rate(&self, class: Class, global: bool) -> Rate {
        let r = match class {
            Class::Read => self.reads,
            Class::Write => self.writes,
            Class::Delete => self.deletes,
        };
        if global {
            Rate {
                burst: r.burst * self.global_factor,
                per_second: r.per_second * self.global_factor,
            }
        } else {
            r
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    /// Tokens now: refilled at the rate since the last look, never above the burst.
    fn level(&mut self, rate: Rate, now_ms: i64) {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at_ms = now_ms.max(self.at_ms);
    }

    /// Whole seconds until one token is there (at least 1, as `Retry-After: 0` means none).
    fn wait_s(&self, rate: Rate) -> u64 {
        (((1.0 - self.tokens) / rate.per_second).ceil() as u64).max(1)
    }
}

/// What the answer tells the client: the tokens left in the caller's and the global bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Remaining {
    pub class: Class,
    pub principal: u64,
    pub global: u64,
}

impl Remaining {
    /// `x-ms-ratelimit-remaining-subscription-{class}` and `…-global-{class}`, as ARM sends
    /// them on the answer of each request of that class.
    pub fn headers(&self) -> [(String, String); 2] {
        let p = self.class.plural();
        [
            (
                format!("x-ms-ratelimit-remaining-subscription-{p}"),
                self.principal.to_string(),
            ),
            (
                format!("x-ms-ratelimit-remaining-subscription-global-{p}"),
                self.global.to_string(),
            ),
        ]
    }
}

/// (subscription, principal object id or `None` for the global bucket, class).
type BucketKey = (String, Option<String>, Class);

#[derive(Default)]
pub struct Buckets {
    pub limits: Limits,
    buckets: HashMap<BucketKey, Bucket>,
}

impl Buckets {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for one request: the tokens left, and ARM's 429 when a bucket is empty
    /// (then nothing is taken).
    pub fn take(
        &mut self,
        subscription: &str,
        principal: &str,
        class: Class,
        now_ms: i64,
    ) -> (Remaining, Option<ArmError>) {
        let own_key = (subscription.to_string(), Some(principal.to_string()), class);
        let global_key = (subscription.to_string(), None, class);
        let own_rate = self.limits.rate(class, false);
        let global_rate = self.limits.rate(class, true);
        let mut own = self.level(&own_key, own_rate, now_ms);
        let mut global = self.level(&global_key, global_rate, now_ms);
        let remaining = |own: &Bucket, global: &Bucket| Remaining {
            class,
            principal: own.tokens.max(0.0).floor() as u64,
            global: global.tokens.max(0.0).floor() as u64,
        };
        if own.tokens < 1.0 || global.tokens < 1.0 {
            let after = if own.tokens < 1.0 {
                own.wait_s(own_rate)
            } else {
                global.wait_s(global_rate)
            };
            let message = if own.tokens < 1.0 {
                format!(
                    "Number of '{}' requests for subscription '{subscription}' actor '{principal}' exceeded. Please try again after '{after}' seconds.",
                    class.word()
                )
            } else {
                format!(
                    "Number of '{}' requests for subscription '{subscription}' exceeded the global limit. Please try again after '{after}' seconds.",
                    class.word()
                )
            };
            let error = ArmError::new(429, "SubscriptionRequestsThrottled", message)
                .header("retry-after", after.to_string());
            return (remaining(&own, &global), Some(error));
        }
        own.tokens -= 1.0;
        global.tokens -= 1.0;
        self.buckets.insert(own_key, own);
        self.buckets.insert(global_key, global);
        (remaining(&own, &global), None)
    }

    /// A bucket's state now (full when first seen), stored back refilled.
    fn level(&mut self, key: &BucketKey, rate: Rate, now_ms: i64) -> Bucket {
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            at_ms: now_ms,
        });
        bucket.level(rate, now_ms);
        *bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";

    /// `take` as a Result: the tokens left, or the refusal.
    fn take(
        b: &mut Buckets,
        sub: &str,
        who: &str,
        class: Class,
        now: i64,
    ) -> Result<Remaining, Box<(ArmError, Remaining)>> {
        match b.take(sub, who, class, now) {
            (r, None) => Ok(r),
            (r, Some(e)) => Err(Box::new((e, r))),
        }
    }

    fn small() -> Buckets {
        Buckets::new(Limits {
            reads: Rate {
                burst: 3.0,
                per_second: 2.0,
            },
            writes: Rate {
                burst: 2.0,
                per_second: 1.0,
            },
            deletes: Rate {
                burst: 2.0,
                per_second: 1.0,
            },
            global_factor: 2.0,
        })
    }

    #[test]
    fn arm_defaults_are_the_published_buckets() {
        let l = Limits::default();
        assert_eq!((l.reads.burst, l.reads.per_second), (250.0, 25.0));
        assert_eq!((l.writes.burst, l.writes.per_second), (200.0, 10.0));
        assert_eq!((l.deletes.burst, l.deletes.per_second), (200.0, 10.0));
        assert_eq!(l.global_factor, 15.0);
        let mut b = Buckets::default();
        let r = take(&mut b, SUB, "oid", Class::Read, 0).expect("allowed");
        assert_eq!((r.principal, r.global), (249, 3749));
    }

    #[test]
    fn remaining_counts_down_then_refuses_with_arms_message_and_retry_after() {
        let mut b = small();
        let counts: Vec<u64> = (0..3)
            .map(|_| {
                take(&mut b, SUB, "oid-1", Class::Read, 1_000)
                    .unwrap()
                    .principal
            })
            .collect();
        assert_eq!(counts, [2, 1, 0]);
        let (e, remaining) = *take(&mut b, SUB, "oid-1", Class::Read, 1_000).unwrap_err();
        assert_eq!(e.status.as_u16(), 429);
        assert_eq!(e.code, "SubscriptionRequestsThrottled");
        assert_eq!(
            e.message,
            format!(
                "Number of 'read' requests for subscription '{SUB}' actor 'oid-1' exceeded. Please try again after '1' seconds."
            )
        );
        assert_eq!(e.headers, [("retry-after", "1".to_string())]);
        assert_eq!(remaining.principal, 0);
    }

    #[test]
    fn buckets_refill_at_their_rate_up_to_the_burst() {
        let mut b = small();
        for _ in 0..3 {
            take(&mut b, SUB, "oid", Class::Read, 0).unwrap();
        }
        assert!(take(&mut b, SUB, "oid", Class::Read, 0).is_err());
        // 2 tokens a second: after 500 ms one request passes, leaving none.
        assert_eq!(
            take(&mut b, SUB, "oid", Class::Read, 500)
                .unwrap()
                .principal,
            0
        );
        // After a long pause the bucket is full again, not fuller.
        assert_eq!(
            take(&mut b, SUB, "oid", Class::Read, 60_000)
                .unwrap()
                .principal,
            2
        );
    }

    #[test]
    fn classes_and_principals_have_their_own_buckets_but_share_the_global_one() {
        let mut b = small();
        take(&mut b, SUB, "a", Class::Write, 0).unwrap();
        take(&mut b, SUB, "a", Class::Write, 0).unwrap();
        assert!(take(&mut b, SUB, "a", Class::Write, 0).is_err());
        // Deletes and reads of the same principal are untouched.
        assert_eq!(
            take(&mut b, SUB, "a", Class::Delete, 0).unwrap().principal,
            1
        );
        assert_eq!(take(&mut b, SUB, "a", Class::Read, 0).unwrap().principal, 2);
        // Another principal has its own write bucket, but the global one (2 × 2) has 2 left.
        let r = take(&mut b, SUB, "b", Class::Write, 0).unwrap();
        assert_eq!((r.principal, r.global), (1, 1));
        take(&mut b, SUB, "b", Class::Write, 0).unwrap();
        // A third principal finds the global write bucket empty.
        let (e, _) = *take(&mut b, SUB, "c", Class::Write, 0).unwrap_err();
        assert!(e.message.contains("global limit"), "{}", e.message);
        // Another subscription is separate.
        assert!(take(&mut b, "other-sub", "c", Class::Write, 0).is_ok());
    }

    #[test]
    fn a_refused_request_takes_no_token() {
        let mut b = small();
        take(&mut b, SUB, "a", Class::Write, 0).unwrap();
        take(&mut b, SUB, "a", Class::Write, 0).unwrap();
        for _ in 0..5 {
            assert!(take(&mut b, SUB, "a", Class::Write, 0).is_err());
        }
        // The global bucket lost only the two admitted requests.
        assert_eq!(take(&mut b, SUB, "b", Class::Write, 0).unwrap().global, 1);
    }

    #[test]
    fn retry_after_is_the_wait_for_one_token() {
        let mut b = Buckets::new(Limits {
            writes: Rate {
                burst: 1.0,
                per_second: 0.25,
            },
            ..Limits::default()
        });
        take(&mut b, SUB, "a", Class::Write, 0).unwrap();
        let (e, _) = *take(&mut b, SUB, "a", Class::Write, 0).unwrap_err();
        assert_eq!(e.headers, [("retry-after", "4".to_string())]);
        let (e, _) = *take(&mut b, SUB, "a", Class::Write, 3_000).unwrap_err();
        assert_eq!(e.headers, [("retry-after", "1".to_string())]);
    }

    #[test]
    fn limits_refuse_empty_buckets() {
        let mut l = Limits::default();
        assert!(l.validate().is_ok());
        l.reads.burst = 0.0;
        assert!(l.validate().is_err());
        let l = Limits {
            global_factor: 0.5,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
    }
}
