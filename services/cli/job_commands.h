// The job commands of the rally CLI, clients of rally-control's JobService at any address:
//   rally submit CONFIG [--request_id ID]      store a job; prints its id
//   rally status JOB_ID                        the job, its history and evaluation results
//   rally list [--state S] [--page_size N] [--page_token T]
//   rally watch JOB_ID                         transitions, evaluation rounds and a live progress
//                                              line until the job ends
//   rally logs JOB_ID [--tail N] [--follow] [--process NAME]
//   rally stop JOB_ID [--reason TEXT]
//   rally resume JOB_ID [--reason TEXT]
//   rally delete JOB_ID
// Each takes --control ADDR and --output table|json: json prints protobuf's canonical JSON of the
// reply, one object per line (streams: one per message). A control started with --tokens_file
// needs a bearer token: --token_file FILE, else the environment variable RALLY_TOKEN (never the
// command line), sent with every call as `authorization: Bearer TOKEN`. Exit status: 0 on
// success, 1 when control refused or could not be reached (its message on stderr), 2 for a usage
// error (an unreadable or empty --token_file included).
#pragma once

#include <string>
#include <vector>

namespace rally {

// Whether `command` is one of the commands above.
bool IsJobCommand(const std::string& command);
// Runs `command` with its positional arguments `args` (after the command) against `control`.
int RunJobCommand(const std::string& command, const std::vector<std::string>& args,
                  const std::string& control);

}  // namespace rally
