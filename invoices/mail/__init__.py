"""The customer e-mails about documents: invoice issued and credit note (with their PDFs),
and the opt-in monthly statement. Registered with `accounts.mail.content` at start-up."""
