//! General utilities with no domain of their own, shared by the segmentation and classifier
//! sides: the seeded PRNG and epoch batching.

pub mod batches;
pub mod rng;
