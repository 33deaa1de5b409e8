/* imap_client.c - to be written */
