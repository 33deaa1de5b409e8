/* generator.c - to be written */
