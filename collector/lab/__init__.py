"""The lab: rehearse real incidents on one machine (`probe-collector lab`).

A scenario file (DESIGN.md section 6) names regions and their agents, targets, checks, faults
on a timeline and what the verdicts should say. The lab runs the real thing: a collector on a
fresh embedded store and one agent process per agent, speaking mTLS with certificates from a
lab CA, against target servers and a DNS server in the lab process.

How per-region (and per-agent) behaviour works without root:

- Agent number k owns the loopback block 127.77.k.0/24. Its resolver (agent config
  `dns_server`) is the lab DNS on 127.77.k.1; its copy of target i listens on 127.77.k.(10+i).
  Every lab server shares one port, so check targets are identical for every agent
  (`https://shop.lab.test:PORT/`) and the collector pushes one central check list.
- The DNS server knows who asks from the address the query arrived on and answers
  `<target>.lab.test` with that agent's copy. A fault for some regions or agents changes how
  their copies (and their DNS answers) behave: certificate swaps, HTTP status, refused,
  blackholed or reset connections, slowness, NXDOMAIN, or everything cut (region_offline).
  agent_offline stops the agent process (SIGSTOP) and resumes it at `until`.
- The agents cannot bind a source address, so "answering per source address" is done by
  answering per destination address; the effect is the same and needs no privilege.

Modules: scenario (parse/validate/scale), faults (the timeline, pure), targets (lab CA,
HTTP/HTTPS/page servers), dns, runner (processes, clock, API polling, teardown), expect,
view (live/plain/JSON), report.
"""
