//! Engine.IO v4 packets (placeholder until written).
