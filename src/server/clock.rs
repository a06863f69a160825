//! The wall clock every module reads, at the bottom of the dependency graph: times are
//! unix milliseconds, as stored.

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
