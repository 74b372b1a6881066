//! Machine model.
