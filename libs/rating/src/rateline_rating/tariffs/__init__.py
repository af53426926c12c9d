"""CGRateS-compatible tariff plans: model, CSV import and rating (pure)."""
