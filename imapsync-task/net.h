/* net.h - to be written */
