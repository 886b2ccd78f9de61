"""The resource families: one module each (payments, payouts, products, orders, profile)."""
