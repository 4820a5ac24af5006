"""Self-healing policies: the schema and its loader (`schema`), matching and guardrails as
pure functions (`guardrails`), one decision per incident and policy (`engine`), the loop's
decide step (`decider`) and execute step (`executor`) wired by `runner`, the human controls
(`state`: kill switch, approve, reject) and the policy backtest (`backtest`)."""
