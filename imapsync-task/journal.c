/* journal.c - to be written */
