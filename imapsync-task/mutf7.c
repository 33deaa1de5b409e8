/* mutf7.c - to be written */
