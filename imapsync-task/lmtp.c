/* lmtp.c - to be written */
