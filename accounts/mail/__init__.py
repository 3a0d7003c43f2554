"""Customer e-mails: who receives which kind (contacts), what they say (content, in the
customer's language), and sending each one once per recipient (sending)."""
