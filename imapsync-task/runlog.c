/* runlog.c - to be written */
