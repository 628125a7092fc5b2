//! Socket.IO v5 packets (placeholder until written).
