"""The sweeper: a scheduled function that ends or re-drives jobs that got stuck."""
