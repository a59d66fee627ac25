//! Building blocks shared by policies: queue orderings and the availability profile.

pub mod order;
pub mod profile;

pub use order::Order;
pub use profile::Profile;
