"""Market data for the engine: `load` from a store into `MarketData` (one timeline)."""
