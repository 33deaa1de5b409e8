/* main.c - commands, options, exit codes (to be written) */
#include <stdio.h>
int main(void) { puts("imapsync-task"); return 0; }
