/* sync_inbox.c - to be written */
