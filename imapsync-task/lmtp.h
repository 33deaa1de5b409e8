/* lmtp.h - to be written */
