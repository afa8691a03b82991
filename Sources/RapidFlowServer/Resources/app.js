// RapidFlow dashboard
