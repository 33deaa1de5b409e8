/* secret.c - to be written */
