/*
 * schema.c: the database schema.
 *
 * Two parts:
 *   1. Hydra's tables that the runner reads and writes (Users for the Projects.owner
 *      key, Projects, Jobsets, Builds, BuildOutputs, BuildSteps, BuildStepOutputs,
 *      BuildProducts, BuildMetrics, FailedPaths), with Hydra's names, column types,
 *      constraints, indexes and notification triggers (Hydra's schema version 87,
 *      i.e. with BuildSteps.resolvedDrvPath and nullable output paths; constraint names
 *      as a fresh hydra.sql install gets them, e.g. the unnamed status-13 check is
 *      buildsteps_check, where a migrated Hydra has buildsteps_resolved_consistent).  Created only
 *      on a database that has none of them (always for a new SQLite file); on a Hydra
 *      database they are used as they are and never altered.  SQLite differences: the
 *      serial ids are INTEGER PRIMARY KEY AUTOINCREMENT (so Jobsets' primary key is
 *      its id and (project, name) is UNIQUE), the hash index is a plain one, and the
 *      triggers write sluice_events rows instead of NOTIFY.
 *   2. sluice's own tables, built by the numbered migrations below and versioned in
 *      sluice_meta ('schema_version').  Adding a migration is one array entry.
 *
 * Everything for one `db init` (or the first open of a SQLite file) happens in one
 * transaction, so a failure leaves nothing behind.
 */
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

/* ---------------------------------------------------------------- Hydra's tables */

/* Column lists shared by both dialects (types as PostgreSQL's information_schema names
 * them; SQLite keeps the declared names). */
#define COLS_USERS                                                                                 \
    "  userName        text primary key not null,\n"                                               \
    "  fullName        text,\n"                                                                    \
    "  emailAddress    text not null,\n"                                                           \
    "  password        text not null,\n"                                                           \
    "  emailOnError    integer not null default 0,\n"                                              \
    "  type            text not null default 'hydra',\n"                                           \
    "  publicDashboard boolean not null default false\n"

#define COLS_PROJECTS                                                                              \
    "  name          text primary key not null,\n"                                                 \
    "  displayName   text not null,\n"                                                             \
    "  description   text,\n"                                                                      \
    "  enabled       integer not null default 1,\n"                                                \
    "  hidden        integer not null default 0,\n"                                                \
    "  owner         text not null,\n"                                                             \
    "  homepage      text,\n"                                                                      \
    "  declfile      text,\n"                                                                      \
    "  decltype      text,\n"                                                                      \
    "  declvalue     text,\n"                                                                      \
    "  enable_dynamic_run_command boolean not null default false,\n"                               \
    "  foreign key (owner) references Users(userName) on update cascade\n"

/* Jobsets: the id column differs (serial vs autoincrement), the rest is shared. */
#define COLS_JOBSETS_TAIL                                                                          \
    "  project          text not null,\n"                                                          \
    "  description      text,\n"                                                                   \
    "  nixExprInput     text,\n"                                                                   \
    "  nixExprPath      text,\n"                                                                   \
    "  errorMsg         text,\n"                                                                   \
    "  errorTime        integer,\n"                                                                \
    "  lastCheckedTime  integer,\n"                                                                \
    "  triggerTime      integer,\n"                                                                \
    "  enabled          integer not null default 1,\n"                                             \
    "  enableEmail      integer not null default 1,\n"                                             \
    "  hidden           integer not null default 0,\n"                                             \
    "  emailOverride    text not null,\n"                                                          \
    "  keepnr           integer not null default 3,\n"                                             \
    "  checkInterval    integer not null default 300,\n"                                           \
    "  schedulingShares integer not null default 100,\n"                                           \
    "  fetchErrorMsg    text,\n"                                                                   \
    "  forceEval        boolean,\n"                                                                \
    "  startTime        integer,\n"                                                                \
    "  type             integer not null default 0,\n"                                             \
    "  flake            text,\n"                                                                   \
    "  enable_dynamic_run_command boolean not null default false,\n"                               \
    "  constraint jobsets_schedulingshares_nonzero_check check (schedulingShares > 0),\n"          \
    "  constraint jobsets_type_known_check check (type = 0 or type = 1),\n"                        \
    "  constraint jobsets_legacy_paths_check check ((type = 0) = (nixExprInput is not null and "   \
    "nixExprPath is not null and flake is null)),\n"                                               \
    "  constraint jobsets_flake_paths_check check ((type = 1) = (nixExprInput is null and "        \
    "nixExprPath is null and flake is not null)),\n"

#define COLS_BUILDS_TAIL                                                                           \
    "  finished       integer not null,\n"                                                         \
    "  timestamp      integer not null,\n"                                                         \
    "  jobset_id      integer not null,\n"                                                         \
    "  job            text not null,\n"                                                            \
    "  nixName        text,\n"                                                                     \
    "  description    text,\n"                                                                     \
    "  drvPath        text not null,\n"                                                            \
    "  system         text not null,\n"                                                            \
    "  license        text,\n"                                                                     \
    "  homepage       text,\n"                                                                     \
    "  maintainers    text,\n"                                                                     \
    "  maxsilent      integer default 3600,\n"                                                     \
    "  timeout        integer default 36000,\n"                                                    \
    "  isChannel      integer not null default 0,\n"                                               \
    "  isCurrent      integer default 0,\n"                                                        \
    "  priority       integer not null default 0,\n"                                               \
    "  globalPriority integer not null default 0,\n"                                               \
    "  startTime      integer,\n"                                                                  \
    "  stopTime       integer,\n"                                                                  \
    "  isCachedBuild  integer,\n"                                                                  \
    "  buildStatus    integer,\n"                                                                  \
    "  size           bigint,\n"                                                                   \
    "  closureSize    bigint,\n"                                                                   \
    "  releaseName    text,\n"                                                                     \
    "  keep           integer not null default 0,\n"                                               \
    "  notificationPendingSince integer,\n"                                                        \
    "  check (finished = 0 or (stopTime is not null and stopTime != 0)),\n"                        \
    "  check (finished = 0 or (startTime is not null and startTime != 0)),\n"                      \
    "  foreign key (jobset_id) references Jobsets(id) on delete cascade\n"

#define TABLES_AFTER_BUILDS                                                                        \
    "create table BuildOutputs (\n"                                                                \
    "  build integer not null,\n"                                                                  \
    "  name  text not null,\n"                                                                     \
    "  path  text,\n"                                                                              \
    "  primary key (build, name),\n"                                                               \
    "  foreign key (build) references Builds(id) on delete cascade\n"                              \
    ");\n"                                                                                         \
    "create table BuildSteps (\n"                                                                  \
    "  build          integer not null,\n"                                                         \
    "  stepnr         integer not null,\n"                                                         \
    "  type           integer not null,\n"                                                         \
    "  drvPath        text not null,\n"                                                            \
    "  busy           integer not null,\n"                                                         \
    "  status         integer,\n"                                                                  \
    "  errorMsg       text,\n"                                                                     \
    "  startTime      integer,\n"                                                                  \
    "  stopTime       integer,\n"                                                                  \
    "  machine        text not null default '',\n"                                                 \
    "  system         text,\n"                                                                     \
    "  propagatedFrom integer,\n"                                                                  \
    "  overhead       integer,\n"                                                                  \
    "  timesBuilt     integer,\n"                                                                  \
    "  isNonDeterministic boolean,\n"                                                              \
    "  resolvedDrvPath text,\n"                                                                    \
    "  primary key (build, stepnr),\n"                                                             \
    "  foreign key (build) references Builds(id) on delete cascade,\n"                             \
    "  foreign key (propagatedFrom) references Builds(id) on delete cascade,\n"                    \
    "  check ((status = 13) = (resolvedDrvPath is not null))\n"                                    \
    ");\n"                                                                                         \
    "create table BuildStepOutputs (\n"                                                            \
    "  build  integer not null,\n"                                                                 \
    "  stepnr integer not null,\n"                                                                 \
    "  name   text not null,\n"                                                                    \
    "  path   text,\n"                                                                             \
    "  primary key (build, stepnr, name),\n"                                                       \
    "  foreign key (build) references Builds(id) on delete cascade,\n"                             \
    "  foreign key (build, stepnr) references BuildSteps(build, stepnr) on delete cascade\n"       \
    ");\n"                                                                                         \
    "create table BuildProducts (\n"                                                               \
    "  build       integer not null,\n"                                                            \
    "  productnr   integer not null,\n"                                                            \
    "  type        text not null,\n"                                                               \
    "  subtype     text not null,\n"                                                               \
    "  fileSize    bigint,\n"                                                                      \
    "  sha256hash  text,\n"                                                                        \
    "  path        text,\n"                                                                        \
    "  name        text not null,\n"                                                               \
    "  defaultPath text,\n"                                                                        \
    "  primary key (build, productnr),\n"                                                          \
    "  foreign key (build) references Builds(id) on delete cascade\n"                              \
    ");\n"                                                                                         \
    "create table BuildMetrics (\n"                                                                \
    "  build     integer not null,\n"                                                              \
    "  name      text not null,\n"                                                                 \
    "  unit      text,\n"                                                                          \
    "  value     double precision not null,\n"                                                     \
    "  project   text not null,\n"                                                                 \
    "  jobset    text not null,\n"                                                                 \
    "  job       text not null,\n"                                                                 \
    "  timestamp integer not null,\n"                                                              \
    "  primary key (build, name),\n"                                                               \
    "  foreign key (build) references Builds(id) on delete cascade,\n"                             \
    "  foreign key (project) references Projects(name) on update cascade,\n"                       \
    "  foreign key (project, jobset) references Jobsets(project, name) on update cascade\n"        \
    ");\n"                                                                                         \
    "create table FailedPaths (\n"                                                                 \
    "  path text primary key not null\n"                                                           \
    ");\n"

/* Indexes of both dialects (the PostgreSQL hash index on BuildOutputs.path is added
 * separately). */
#define INDEXES                                                                                    \
    "create index IndexBuildMetricsOnJobTimestamp on BuildMetrics(project, jobset, job, "          \
    "timestamp desc);\n"                                                                           \
    "create index IndexBuildProducstOnBuildAndType on BuildProducts(build, type);\n"               \
    "create index IndexBuildProductsOnBuild on BuildProducts(build);\n"                            \
    "create index IndexBuildStepsOnBusy on BuildSteps(busy) where busy != 0;\n"                    \
    "create index IndexBuildStepsOnDrvPath on BuildSteps(drvpath);\n"                              \
    "create index IndexBuildStepsOnPropagatedFrom on BuildSteps(propagatedFrom) where "            \
    "propagatedFrom is not null;\n"                                                                \
    "create index IndexBuildStepsOnStopTime on BuildSteps(stopTime desc) where startTime is not "  \
    "null and stopTime is not null;\n"                                                             \
    "create index IndexBuildStepOutputsOnPath on BuildStepOutputs(path);\n"                        \
    "create index IndexBuildsOnFinished on Builds(finished) where finished = 0;\n"                 \
    "create index IndexBuildsOnIsCurrent on Builds(isCurrent) where isCurrent = 1;\n"              \
    "create index IndexBuildsJobsetIdCurrentUnfinished on Builds(jobset_id) where isCurrent = 1 "  \
    "and finished = 0;\n"                                                                          \
    "create index IndexBuildsJobsetIdCurrentFinishedStatus on Builds(jobset_id, buildstatus) "     \
    "where isCurrent = 1 and finished = 1;\n"                                                      \
    "create index IndexBuildsJobsetIdCurrent on Builds(jobset_id) where isCurrent = 1;\n"          \
    "create index IndexBuildsOnTimestamp on Builds(timestamp);\n"                                  \
    "create index IndexBuildsOnFinishedStopTime on Builds(finished, stoptime desc);\n"             \
    "create index IndexBuildsOnJobsetIdFinishedId on Builds(jobset_id, job, finished, id desc);\n" \
    "create index IndexFinishedSuccessfulBuilds on Builds(jobset_id, job, finished, buildstatus, " \
    "id desc) where buildstatus = 0 and finished = 1;\n"                                           \
    "create index IndexBuildsOnDrvPath on Builds(drvPath);\n"                                      \
    "create index IndexProjectsOnEnabled on Projects(enabled);\n"                                  \
    "create index IndexBuildsOnKeep on Builds(keep) where keep = 1;\n"                             \
    "create index IndexBuildsOnNotificationPendingSince on Builds(notificationPendingSince) "      \
    "where notificationPendingSince is not null;\n"

static const char hydra_sqlite[] =
    "create table Users (\n" COLS_USERS ");\n"
    "create table Projects (\n" COLS_PROJECTS ");\n"
    "create table Jobsets (\n"
    "  name text not null,\n"
    "  id   integer primary key autoincrement not null,\n" COLS_JOBSETS_TAIL
    "  unique (project, name),\n"
    "  foreign key (project) references Projects(name) on delete cascade on update cascade\n"
    ");\n"
    "create table Builds (\n"
    "  id integer primary key autoincrement not null,\n" COLS_BUILDS_TAIL
    ");\n" TABLES_AFTER_BUILDS INDEXES "create index IndexBuildOutputsPath on BuildOutputs(path);\n"
    /* Hydra's IdempotentInsert rule: a second INSERT of a path does nothing */
    "create trigger FailedPathsIdempotentInsert before insert on FailedPaths\n"
    "  when exists (select 1 from FailedPaths where path = new.path)\n"
    "  begin select raise(ignore); end;\n";

/* Hydra's notification triggers, as PostgreSQL functions. */
#define PG_NOTIFY_FN(fn, channel)                                                                  \
    "create function " fn "() returns trigger as $$ begin notify " channel                         \
    "; return null; end; $$ language plpgsql;\n"

/* SQL text laid out as it reads */
/* clang-format off */
static const char hydra_pg[] =
    "create table Users (\n"
    COLS_USERS
    ");\n"
    "create table Projects (\n"
    COLS_PROJECTS
    ");\n"
    "create table Jobsets (\n"
    "  name text not null,\n"
    "  id   serial not null,\n"
    COLS_JOBSETS_TAIL
    "  primary key (project, name),\n"
    "  foreign key (project) references Projects(name) on delete cascade on update cascade,\n"
    "  constraint Jobsets_id_unique unique (id)\n"
    ");\n"
    "create table Builds (\n"
    "  id serial primary key not null,\n"
    COLS_BUILDS_TAIL
    ");\n"
    TABLES_AFTER_BUILDS
    INDEXES
    "create index IndexBuildOutputsPath on BuildOutputs using hash(path);\n"
    "create rule IdempotentInsert as on insert to FailedPaths\n"
    "  where exists (select 1 from FailedPaths where path = new.path) do instead nothing;\n"
    PG_NOTIFY_FN("notifyJobsetSharesChanged", "jobset_shares_changed")
    "create trigger JobsetSharesChanged after update on Jobsets for each row\n"
    "  when (old.schedulingShares != new.schedulingShares)\n"
    "  execute procedure notifyJobsetSharesChanged();\n"
    PG_NOTIFY_FN("notifyJobsetsAdded", "jobsets_added")
    "create trigger JobsetsAdded after insert on Jobsets execute procedure notifyJobsetsAdded();\n"
    PG_NOTIFY_FN("notifyJobsetsDeleted", "jobsets_deleted")
    "create trigger JobsetsDeleted after delete on Jobsets\n"
    "  execute procedure notifyJobsetsDeleted();\n"
    PG_NOTIFY_FN("notifyJobsetSchedulingChanged", "jobset_scheduling_changed")
    "create trigger JobsetSchedulingChanged after update on Jobsets for each row\n"
    "  when (((old.triggerTime is distinct from new.triggerTime) and (new.triggerTime is not null))\n"
    "        or (old.checkInterval != new.checkInterval) or (old.enabled != new.enabled))\n"
    "  execute procedure notifyJobsetSchedulingChanged();\n"
    PG_NOTIFY_FN("notifyBuildsDeleted", "builds_deleted")
    "create trigger BuildsDeleted after delete on Builds execute procedure notifyBuildsDeleted();\n"
    PG_NOTIFY_FN("notifyBuildRestarted", "builds_restarted")
    "create trigger BuildRestarted after update on Builds for each row\n"
    "  when (old.finished = 1 and new.finished = 0) execute procedure notifyBuildRestarted();\n"
    PG_NOTIFY_FN("notifyBuildCancelled", "builds_cancelled")
    "create trigger BuildCancelled after update on Builds for each row\n"
    "  when (old.finished = 0 and new.finished = 1 and new.buildStatus = 4)\n"
    "  execute procedure notifyBuildCancelled();\n"
    PG_NOTIFY_FN("notifyBuildBumped", "builds_bumped")
    "create trigger BuildBumped after update on Builds for each row\n"
    "  when (old.globalPriority != new.globalPriority) execute procedure notifyBuildBumped();\n";
/* clang-format on */

/* Hydra tables the runner needs (all must be there, or none for a fresh schema). */
static const char *const hydra_required[] = {
    "Projects",         "Jobsets",       "Builds",       "BuildOutputs", "BuildSteps",
    "BuildStepOutputs", "BuildProducts", "BuildMetrics", "FailedPaths",
};

/* Expected columns: "name type" with " nn" for NOT NULL.  Checked by db check against
 * the live schema (and by the tests against Hydra's own hydra.sql). */
typedef struct TableSpec {
    const char *table;
    const char *const *cols;
} TableSpec;

static const char *const spec_users[] = {
    "userName text nn",        "fullName text", "emailAddress text nn",       "password text nn",
    "emailOnError integer nn", "type text nn",  "publicDashboard boolean nn", NULL};
static const char *const spec_projects[] = {"name text nn",
                                            "displayName text nn",
                                            "description text",
                                            "enabled integer nn",
                                            "hidden integer nn",
                                            "owner text nn",
                                            "homepage text",
                                            "declfile text",
                                            "decltype text",
                                            "declvalue text",
                                            "enable_dynamic_run_command boolean nn",
                                            NULL};
static const char *const spec_jobsets[] = {"name text nn",
                                           "id integer nn",
                                           "project text nn",
                                           "description text",
                                           "nixExprInput text",
                                           "nixExprPath text",
                                           "errorMsg text",
                                           "errorTime integer",
                                           "lastCheckedTime integer",
                                           "triggerTime integer",
                                           "enabled integer nn",
                                           "enableEmail integer nn",
                                           "hidden integer nn",
                                           "emailOverride text nn",
                                           "keepnr integer nn",
                                           "checkInterval integer nn",
                                           "schedulingShares integer nn",
                                           "fetchErrorMsg text",
                                           "forceEval boolean",
                                           "startTime integer",
                                           "type integer nn",
                                           "flake text",
                                           "enable_dynamic_run_command boolean nn",
                                           NULL};
static const char *const spec_builds[] = {"id integer nn",
                                          "finished integer nn",
                                          "timestamp integer nn",
                                          "jobset_id integer nn",
                                          "job text nn",
                                          "nixName text",
                                          "description text",
                                          "drvPath text nn",
                                          "system text nn",
                                          "license text",
                                          "homepage text",
                                          "maintainers text",
                                          "maxsilent integer",
                                          "timeout integer",
                                          "isChannel integer nn",
                                          "isCurrent integer",
                                          "priority integer nn",
                                          "globalPriority integer nn",
                                          "startTime integer",
                                          "stopTime integer",
                                          "isCachedBuild integer",
                                          "buildStatus integer",
                                          "size bigint",
                                          "closureSize bigint",
                                          "releaseName text",
                                          "keep integer nn",
                                          "notificationPendingSince integer",
                                          NULL};
static const char *const spec_buildoutputs[] = {"build integer nn", "name text nn", "path text",
                                                NULL};
static const char *const spec_buildsteps[] = {"build integer nn",
                                              "stepnr integer nn",
                                              "type integer nn",
                                              "drvPath text nn",
                                              "busy integer nn",
                                              "status integer",
                                              "errorMsg text",
                                              "startTime integer",
                                              "stopTime integer",
                                              "machine text nn",
                                              "system text",
                                              "propagatedFrom integer",
                                              "overhead integer",
                                              "timesBuilt integer",
                                              "isNonDeterministic boolean",
                                              "resolvedDrvPath text",
                                              NULL};
static const char *const spec_buildstepoutputs[] = {"build integer nn", "stepnr integer nn",
                                                    "name text nn", "path text", NULL};
static const char *const spec_buildproducts[] = {"build integer nn", "productnr integer nn",
                                                 "type text nn",     "subtype text nn",
                                                 "fileSize bigint",  "sha256hash text",
                                                 "path text",        "name text nn",
                                                 "defaultPath text", NULL};
static const char *const spec_buildmetrics[] = {"build integer nn",
                                                "name text nn",
                                                "unit text",
                                                "value double precision nn",
                                                "project text nn",
                                                "jobset text nn",
                                                "job text nn",
                                                "timestamp integer nn",
                                                NULL};
static const char *const spec_failedpaths[] = {"path text nn", NULL};
static const char *const spec_meta[] = {"key text nn", "value text nn", NULL};
static const char *const spec_txlog[] = {"id text nn", "time integer nn", NULL};
static const char *const spec_gcroots[] = {"root text nn",  "path text nn",       "kind text nn",
                                           "build integer", "created integer nn", NULL};
static const char *const spec_uploads[] = {"drvPath text nn",      "outputs text nn",
                                           "resolvedFrom text nn", "realisations integer nn",
                                           "created integer nn",   NULL};
static const char *const spec_events[] = {"id integer nn", "channel text nn", "payload text nn",
                                          "time integer nn", NULL};

static const TableSpec hydra_specs[] = {
    {"Users", spec_users},
    {"Projects", spec_projects},
    {"Jobsets", spec_jobsets},
    {"Builds", spec_builds},
    {"BuildOutputs", spec_buildoutputs},
    {"BuildSteps", spec_buildsteps},
    {"BuildStepOutputs", spec_buildstepoutputs},
    {"BuildProducts", spec_buildproducts},
    {"BuildMetrics", spec_buildmetrics},
    {"FailedPaths", spec_failedpaths},
};

/* Indexes the runner's queries rely on. */
static const char *const runner_indexes[] = {
    "IndexBuildStepsOnDrvPath", "IndexBuildStepOutputsOnPath", "IndexBuildsOnFinished",
    "IndexBuildStepsOnBusy",    "IndexBuildOutputsPath",
};

/* ---------------------------------------------------------------- sluice's tables */

/* One migration: SQL for both backends, then SQL for one backend only (each NULL when
 * there is none).  Version N is entry N-1.  Migrations only ever touch sluice_* tables
 * on PostgreSQL; on SQLite (where sluice owns the whole schema) they may also change
 * the Hydra-named tables through `sqlite`. */
typedef struct DbMigration {
    const char *both;
    const char *sqlite;
    const char *pg;
} DbMigration;

static const DbMigration migrations[] = {
    /* 1: version table, transaction log, GC roots; SQLite: events and their triggers */
    {"create table sluice_meta (key text primary key not null, value text not null);\n"
     "create table sluice_txlog (id text primary key not null, time integer not null);\n"
     "create index sluice_txlog_time on sluice_txlog (time);\n"
     "create table sluice_gcroots (root text primary key not null, path text not null,\n"
     "  kind text not null, build integer, created integer not null);\n"
     "create index sluice_gcroots_build on sluice_gcroots (build);\n"
     "create index sluice_gcroots_path on sluice_gcroots (path);\n",
     "create table sluice_events (id integer primary key autoincrement not null,\n"
     "  channel text not null, payload text not null, time integer not null);\n"
     "create trigger sluice_builds_deleted after delete on Builds begin\n"
     "  insert into sluice_events (channel, payload, time)\n"
     "  values ('builds_deleted', '', cast(strftime('%s', 'now') as integer)); end;\n"
     "create trigger sluice_builds_restarted after update of finished on Builds\n"
     "  when old.finished = 1 and new.finished = 0 begin\n"
     "  insert into sluice_events (channel, payload, time)\n"
     "  values ('builds_restarted', '', cast(strftime('%s', 'now') as integer)); end;\n"
     "create trigger sluice_builds_cancelled after update on Builds\n"
     "  when old.finished = 0 and new.finished = 1 and new.buildStatus = 4 begin\n"
     "  insert into sluice_events (channel, payload, time)\n"
     "  values ('builds_cancelled', '', cast(strftime('%s', 'now') as integer)); end;\n"
     "create trigger sluice_builds_bumped after update of globalPriority on Builds\n"
     "  when old.globalPriority != new.globalPriority begin\n"
     "  insert into sluice_events (channel, payload, time)\n"
     "  values ('builds_bumped', '', cast(strftime('%s', 'now') as integer)); end;\n"
     "create trigger sluice_jobset_shares_changed after update of schedulingShares on Jobsets\n"
     "  when old.schedulingShares != new.schedulingShares begin\n"
     "  insert into sluice_events (channel, payload, time)\n"
     "  values ('jobset_shares_changed', '', cast(strftime('%s', 'now') as integer)); end;\n",
     NULL},
    /* 2: outputs built and not yet in the binary cache (store-uri): published again by
     * the next runner when one stopped before their upload ended */
    {"create table sluice_uploads (drvPath text primary key not null, outputs text not null,\n"
     "  resolvedFrom text not null, realisations integer not null, created integer not null);\n",
     NULL, NULL},
};

int db_schema_latest(void)
{
    return (int)UTIL_ARRAY_LEN(migrations);
}

/* ---------------------------------------------------------------- init / migrate */

static int read_version(Db *db, int *out, Err *e)
{
    int have = 0, rc;
    char *v = NULL;
    int64_t n = 0;
    *out = 0;
    rc = db__table_exists(db, "sluice_meta", &have, e);
    if (rc < 0 || !have)
        return rc;
    rc = db_query_text(db, "SELECT value FROM sluice_meta WHERE key = 'schema_version'", NULL, 0,
                       &v, e);
    if (rc < 0)
        return rc;
    if (rc == 0 || !v || util_parse_i64(v, &n) < 0 || n < 0 || n > 1000000) {
        rc = err_set(e, ERR_DB, "%s: sluice_meta has no valid schema_version ('%s')", db->url_safe,
                     v ? v : "");
        free(v);
        return rc;
    }
    free(v);
    *out = (int)n;
    return 0;
}

static int newer_error(Db *db, int version, Err *e)
{
    return err_set(e, ERR_UNSUPPORTED,
                   "the database %s has schema version %d, written by a newer sluice (this one "
                   "knows version %d): upgrade sluice",
                   db->url_safe, version, db_schema_latest());
}

/* Apply pending migrations; inside the schema transaction. */
static int migrate(Db *db, Err *e)
{
    int version, rc, latest = db_schema_latest();
    char vbuf[16];
    rc = read_version(db, &version, e);
    if (rc < 0)
        return rc;
    if (version > latest)
        return newer_error(db, version, e);
    for (int v = version + 1; v <= latest; v++) {
        const DbMigration *m = &migrations[v - 1];
        const char *own = db->kind == DB_SQLITE ? m->sqlite : m->pg;
        if (m->both && (rc = db__exec_script(db, m->both, e)) < 0)
            return err_prefix(e, "schema migration %d", v);
        if (own && (rc = db__exec_script(db, own, e)) < 0)
            return err_prefix(e, "schema migration %d", v);
    }
    if (version == latest)
        return 0;
    snprintf(vbuf, sizeof vbuf, "%d", latest);
    rc = db__exec_raw(db,
                      "INSERT INTO sluice_meta (key, value) VALUES ('schema_version', $1) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      DB_ARGS(DB_P_TEXT(vbuf)), e);
    return rc < 0 ? rc : 0;
}

typedef struct InitCtx {
    int created_hydra;
} InitCtx;

static int init_body(Db *db, void *payload, Err *e)
{
    InitCtx *ctx = payload;
    size_t present = 0;
    Buf missing;
    int rc;
    ctx->created_hydra = 0;
    if (db->kind == DB_POSTGRES) {
        rc = db__exec_raw(db, "SELECT pg_advisory_xact_lock($1)",
                          DB_ARGS(DB_P_INT(DB_PG_INIT_LOCK_KEY)), e);
        if (rc < 0)
            return rc;
    }
    buf_init(&missing, 4096);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hydra_required); i++) {
        int yes = 0;
        rc = db__table_exists(db, hydra_required[i], &yes, e);
        if (rc < 0)
            goto out;
        if (yes)
            present++;
        else
            buf_printf(&missing, "%s%s", missing.len ? ", " : "", hydra_required[i]);
    }
    if (present == 0) {
        rc = db__exec_script(db, db->kind == DB_SQLITE ? hydra_sqlite : hydra_pg, e);
        if (rc < 0) {
            err_prefix(e, "creating Hydra's tables");
            goto out;
        }
        ctx->created_hydra = 1;
    } else if (present < UTIL_ARRAY_LEN(hydra_required)) {
        rc = err_set(e, ERR_CONFLICT,
                     "the database %s holds some of Hydra's tables but not %s: not a complete "
                     "Hydra schema",
                     db->url_safe, buf_cstr(&missing));
        goto out;
    }
    rc = migrate(db, e);
out:
    buf_dispose(&missing);
    return rc;
}

int db_schema_init(Db *db, int *created_hydra, Err *e)
{
    InitCtx ctx = {0};
    int rc = db__tx(db, init_body, &ctx, 0, e);
    if (created_hydra)
        *created_hydra = ctx.created_hydra;
    if (rc == 0)
        db->txlog_state = 1;
    return rc;
}

static int migrate_body(Db *db, void *payload, Err *e)
{
    (void)payload;
    if (db->kind == DB_POSTGRES) {
        int rc = db__exec_raw(db, "SELECT pg_advisory_xact_lock($1)",
                              DB_ARGS(DB_P_INT(DB_PG_INIT_LOCK_KEY)), e);
        if (rc < 0)
            return rc;
    }
    return migrate(db, e);
}

int db__schema_open(Db *db, Err *e)
{
    int version = 0, rc = db__hydra_schema_refuse_old(db, e);
    if (rc < 0)
        return rc;
    rc = read_version(db, &version, e);
    if (rc < 0)
        return rc;
    if (version == 0) {
        if (db->kind == DB_SQLITE)
            return db_schema_init(db, NULL, e);
        return err_set(e, ERR_NOTFOUND,
                       "the PostgreSQL database %s has no sluice tables: run `sluice db init "
                       "--db URL` first",
                       db->url_safe);
    }
    if (version > db_schema_latest())
        return newer_error(db, version, e);
    if (version < db_schema_latest()) {
        rc = db__tx(db, migrate_body, NULL, 0, e);
        if (rc < 0)
            return rc;
    }
    db->txlog_state = 1;
    return 0;
}

/* ---------------------------------------------------------------- check */

/* Lower-case copy of s into out. */
static void lower(const char *s, char *out, size_t size)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    out[i] = '\0';
}

typedef struct LiveCol {
    char name[128];
    char type[64];
    int notnull;
} LiveCol;

/* Columns of a live table (names and types lower-cased). */
static int live_columns(Db *db, const char *table, LiveCol **out, size_t *n, Err *e)
{
    DbStmt *st;
    char lt[128];
    int rc;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    lower(table, lt, sizeof lt);
    if (db->kind == DB_SQLITE)
        rc = db_query(db, "SELECT name, type, \"notnull\" FROM pragma_table_info($1)",
                      DB_ARGS(DB_P_TEXT(table)), &st, e);
    else
        rc = db_query(db,
                      "SELECT column_name, data_type, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 "
                      "END FROM information_schema.columns WHERE table_schema = current_schema() "
                      "AND table_name = $1",
                      DB_ARGS(DB_P_TEXT(lt)), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *nm = db_col_text(st, 0), *ty = db_col_text(st, 1);
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        lower(nm ? nm : "", (*out)[*n].name, sizeof(*out)[*n].name);
        lower(ty ? ty : "", (*out)[*n].type, sizeof(*out)[*n].type);
        (*out)[*n].notnull = (int)db_col_int64(st, 2);
        (*n)++;
    }
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int check_table(Db *db, const TableSpec *t, StrVec *missing, Err *e)
{
    LiveCol *cols = NULL;
    size_t n = 0;
    int yes = 0, rc = db__table_exists(db, t->table, &yes, e);
    if (rc < 0)
        return rc;
    if (!yes) {
        strvec_push_take(missing, xasprintf("table %s", t->table));
        return 0;
    }
    rc = live_columns(db, t->table, &cols, &n, e);
    if (rc < 0)
        return rc;
    for (const char *const *c = t->cols; *c; c++) {
        char name[128], type[64], lname[128];
        int nn = util_ends_with(*c, " nn");
        size_t sp = strcspn(*c, " "), tl = strlen(*c) - sp - 1 - (nn ? 3 : 0);
        LiveCol *live = NULL;
        snprintf(name, sizeof name, "%.*s", (int)sp, *c);
        snprintf(type, sizeof type, "%.*s", (int)tl, *c + sp + 1);
        lower(name, lname, sizeof lname);
        for (size_t i = 0; i < n; i++)
            if (strcmp(cols[i].name, lname) == 0)
                live = &cols[i];
        if (!live) {
            strvec_push_take(missing, xasprintf("column %s.%s", t->table, name));
            continue;
        }
        if (strcmp(live->type, type) != 0)
            strvec_push_take(missing, xasprintf("type of %s.%s: %s (expected %s)", t->table, name,
                                                live->type, type));
        /* SQLite does not mark INTEGER PRIMARY KEY columns NOT NULL in table_info when
         * they were declared without it; ours are declared with it. */
        if (live->notnull != nn)
            strvec_push_take(missing, xasprintf("%s.%s is %s (expected %s)", t->table, name,
                                                live->notnull ? "NOT NULL" : "nullable",
                                                nn ? "NOT NULL" : "nullable"));
    }
    free(cols);
    return 0;
}

static int index_exists(Db *db, const char *name, int *out, Err *e)
{
    int64_t n = 0;
    char ln[128];
    int rc;
    lower(name, ln, sizeof ln);
    if (db->kind == DB_SQLITE)
        rc = db_query_int64(db,
                            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                            "lower(name) = $1",
                            DB_ARGS(DB_P_TEXT(ln)), &n, e);
    else
        rc = db_query_int64(db,
                            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                            "AND indexname = $1",
                            DB_ARGS(DB_P_TEXT(ln)), &n, e);
    *out = n > 0;
    return rc < 0 ? rc : 0;
}

/* The check (status = 13) = (resolvedDrvPath is not null) on BuildSteps. */
static int resolved_check_exists(Db *db, int *out, Err *e)
{
    int64_t n = 0;
    int rc;
    if (db->kind == DB_SQLITE)
        rc = db_query_int64(db,
                            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                            "lower(name) = 'buildsteps' AND lower(sql) LIKE "
                            "'%(status = 13) = (resolveddrvpath is not null)%'",
                            NULL, 0, &n, e);
    else
        rc = db_query_int64(db,
                            "SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = "
                            "c.conrelid JOIN pg_namespace s ON s.oid = t.relnamespace WHERE "
                            "s.nspname = current_schema() AND t.relname = 'buildsteps' AND "
                            "c.contype = 'c' AND lower(pg_get_constraintdef(c.oid)) LIKE "
                            "'%status = 13%resolveddrvpath is not null%'",
                            NULL, 0, &n, e);
    *out = n > 0;
    return rc < 0 ? rc : 0;
}

int db_schema_check(Db *db, DbSchemaReport *out, Err *e)
{
    int rc, yes = 0;
    memset(out, 0, sizeof *out);
    strvec_init(&out->missing);
    out->latest = db_schema_latest();
    out->hydra_version = -1;
    rc = read_version(db, &out->version, e);
    if (rc < 0)
        return rc;
    rc = db_hydra_schema_version(db, &out->hydra_version, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hydra_specs); i++) {
        rc = check_table(db, &hydra_specs[i], &out->missing, e);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(runner_indexes); i++) {
        rc = index_exists(db, runner_indexes[i], &yes, e);
        if (rc < 0)
            return rc;
        if (!yes)
            strvec_push_take(&out->missing, xasprintf("index %s", runner_indexes[i]));
    }
    rc = db__table_exists(db, "BuildSteps", &yes, e);
    if (rc < 0)
        return rc;
    if (yes) {
        rc = resolved_check_exists(db, &yes, e);
        if (rc < 0)
            return rc;
        if (!yes)
            strvec_push(&out->missing,
                        "check constraint on BuildSteps: (status = 13) = (resolvedDrvPath is not "
                        "null)");
    }
    {
        static const TableSpec own[] = {
            {"sluice_meta", spec_meta},       {"sluice_txlog", spec_txlog},
            {"sluice_gcroots", spec_gcroots}, {"sluice_uploads", spec_uploads},
            {"sluice_events", spec_events},
        };
        size_t n_own = db->kind == DB_SQLITE ? 5 : 4;
        for (size_t i = 0; i < n_own; i++) {
            rc = check_table(db, &own[i], &out->missing, e);
            if (rc < 0)
                return rc;
        }
    }
    if (out->version < out->latest)
        strvec_push_take(&out->missing, xasprintf("sluice schema migrations %d..%d",
                                                  out->version + 1, out->latest));
    return 0;
}

void db_schema_report_dispose(DbSchemaReport *r)
{
    if (r)
        strvec_dispose(&r->missing);
}
