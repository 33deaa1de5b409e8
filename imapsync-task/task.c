/* task.c - to be written */
