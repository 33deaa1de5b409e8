/* sync.h - to be written */
