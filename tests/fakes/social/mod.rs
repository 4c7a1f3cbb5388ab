//! One fake per social platform, each a real HTTP server on 127.0.0.1 speaking the
//! platform's request and response shapes (see the platform reference), recording every
//! request it receives. Tests point an account's `base_url` (and `auth_url`) at them.

pub mod common;
pub mod facebook;
pub mod instagram;
pub mod linkedin;
pub mod reddit;
pub mod stocktwits;
pub mod x;
