/* imap_parser.c - to be written */
