//! Understanding layers (issue 6): representation similarity between layers and models.

pub mod cka;
pub mod sensitivity;
pub mod similarity;
