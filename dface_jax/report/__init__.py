"""What a run reports: tables (markdown), figures (PNG) and the html page."""
