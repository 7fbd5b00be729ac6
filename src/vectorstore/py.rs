//! PyO3 binding (next).
