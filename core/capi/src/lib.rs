//! C ABI (filled by the C issue).
