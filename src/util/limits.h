/*
 * Named limits.  Every length or count that comes from a .drv file, a NAR, a peer or
 * the database meets one of these before anything is allocated for it.  Each says why
 * it has the value it has.
 */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

/* A .drv file.  nixpkgs' largest derivations (with big inline env, e.g. structured
 * attrs for large packages) stay under a few MB; 64 MiB leaves ample room. */
#define LIMIT_DRV_FILE_SIZE (64u * 1024 * 1024)
/* Entries of each list in a .drv (outputs, inputs, srcs, args, env). */
#define LIMIT_DRV_LIST_ITEMS (1u << 20)
/* One string inside a .drv (an env value can hold a whole script). */
#define LIMIT_DRV_STRING (32u * 1024 * 1024)
/* Outputs of one derivation. */
#define LIMIT_DRV_OUTPUTS 1024

/* Store paths: Nix allows a 211-byte name; the store dir plus "/" + 32 + "-" on top. */
#define LIMIT_STORE_PATH_NAME 211
#define LIMIT_STORE_DIR       256
#define LIMIT_STORE_PATH      (LIMIT_STORE_DIR + 1 + 32 + 1 + LIMIT_STORE_PATH_NAME)

/* NAR: a file name inside a NAR (Linux NAME_MAX); a symlink target (PATH_MAX); the
 * nesting depth of directories (deeper trees than this do not occur in practice and a
 * hostile NAR must not make us recurse without bound). */
#define LIMIT_NAR_NAME   255
#define LIMIT_NAR_TARGET 4096
#define LIMIT_NAR_DEPTH  256
#define LIMIT_NAR_TOKEN  4096
/* One regular file inside a NAR.  File data is streamed, never held in memory; the cap
 * keeps offsets far from overflow and makes a hostile length in an unframed NAR fail at
 * once instead of swallowing the rest of the stream.  1 TiB is beyond any store file. */
#define LIMIT_NAR_FILE_SIZE (1ull << 40)

/* Wire protocol: one string from a peer other than a NAR or log chunk (paths, names,
 * JSON realisations, error messages). */
#define LIMIT_WIRE_STRING (16u * 1024 * 1024)
/* Count of items in a list sent by a peer (paths in a closure, references). */
#define LIMIT_WIRE_LIST (4u * 1024 * 1024)
/* One piece of log text held in memory (a longer log line or message is passed on in
 * pieces of this size: it is data, never refused). */
#define LIMIT_WIRE_LOG_CHUNK (1u * 1024 * 1024)
/* An error message from a peer as kept (in the step's row, in logs).  Nix puts the last
 * lines of a failed build's log into it, any bytes of any length: the log has them all,
 * the message keeps the first 64 KiB and says how many bytes it left out. */
#define LIMIT_WIRE_MESSAGE (64u * 1024)
/* The warnings and errors of one substitution request kept to tell a failed
 * substitution from a miss (store_substitute_outputs); beyond it no name is a miss. */
#define LIMIT_SUBST_COMPLAINTS (4u * 1024 * 1024)
/* Substitutions a runner remembers (drv, outputs, start, stop) for the type-1 rows of
 * builds read later that need them; the oldest is forgotten first.  A few hundred
 * bytes each. */
#define LIMIT_SUBST_REMEMBERED 100000
/* Framed-stream chunk from a peer. */
#define LIMIT_WIRE_FRAME (64u * 1024 * 1024)

/* Config file and machines file. */
#define LIMIT_CONFIG_FILE    (1u * 1024 * 1024)
#define LIMIT_JOBSET_REPEATS 100 /* extra rounds a jobset may ask for (jobset-repeats) */
/* JSON or text read from nix-instantiate / nix eval output. */
#define LIMIT_TOOL_OUTPUT (256u * 1024 * 1024)

/* A Buf with no particular cap other than "sane". */
#define LIMIT_BUF_DEFAULT (256u * 1024 * 1024)

#endif
