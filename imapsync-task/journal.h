/* journal.h - to be written */
