/* runlog.h - to be written */
