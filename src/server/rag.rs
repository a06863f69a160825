//! Documents and retrieval-augmented answers: [`extract`] text from uploads (in a child
//! process, [`sandbox`]), [`chunk`] it,
//! embed and store it through [`ingest`] (multipart uploads in `upload`, the background
//! `worker`), search it with [`retrieve`] (hybrid BM25 +
//! vectors, re-scored, with a similarity floor) over the in-memory [`index`].

pub mod chunk;
pub mod eval;
pub mod extract;
pub mod index;
pub mod ingest;
pub mod retrieve;
pub mod sandbox;
mod upload;
mod worker;
