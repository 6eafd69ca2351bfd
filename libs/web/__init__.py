"""HTTP edge pieces shared by the Litestar services."""
