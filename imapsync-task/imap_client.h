/* imap_client.h - to be written */
